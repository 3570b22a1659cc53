/**
 * Compiles one .proto file to the FileDescriptorProto protoc and buf write for it: its real name,
 * its imports as dependencies, fully qualified type names (leading dot), map fields with their nested
 * `XxxEntry` types, proto3 `optional` with its synthetic oneof, json_name on every field, and options
 * (custom ones as encoded bytes). protobufjs' parser reads the grammar; every descriptor is built
 * here, never by protobufjs' own descriptor conversion (which loses maps, names and options).
 * test/descriptors.test.ts holds the output to `buf build`'s, file by file.
 */
import * as protobuf from "protobufjs";
import { create, createFileRegistry, type DescMessage, type Message } from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import {
  DescriptorProtoSchema,
  EnumDescriptorProtoSchema,
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as FieldType,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  FileOptionsSchema,
  MessageOptionsSchema,
  MethodDescriptorProtoSchema,
  MethodOptionsSchema,
  OneofDescriptorProtoSchema,
  OneofOptionsSchema,
  ServiceDescriptorProtoSchema,
  ServiceOptionsSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  type ServiceDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { appendCustomOption, customOptions, entriesFromFlat, standardOptions, type OptionEntry } from "./proto-options";
import { readLayout, type ProtoLayout } from "./proto-layout";
import { join, SymbolTable } from "./proto-symbols";
import { SCALAR_TYPES } from "../../common/proto-scalars";
import { keepFieldIndexAcrossAdds } from "./linear-fields";

// Messages of many fields build in linear time (linear-fields.ts).
keepFieldIndexAcrossAdds();


/** What the parser leaves on every element that can carry options. */
type WithOptions = { parsedOptions?: OptionEntry[] | null; options?: Record<string, unknown> };

/**
 * Compiles `source`, the file named `name` (as it is imported), against `dependencies`: the compiled
 * files it imports, directly or not.
 */
export function compileProto(name: string, source: string, dependencies: readonly FileDescriptorProto[]): FileDescriptorProto {
  try {
    return new FileCompiler(name, source, dependencies).compile();
  } catch (e) {
    const message = (e as Error).message;
    throw new Error(message.includes(name) ? message : `${name}: ${message}`);
  }
}

/** protoc's name for a map field's entry type: cell_data -> CellDataEntry. */
export function mapEntryName(field: string): string {
  return `${field.replace(/(?:^|_)([a-z]?)/g, (_, c: string) => c.toUpperCase())}Entry`;
}

class FileCompiler {
  private readonly layout: ProtoLayout;
  private readonly parsed: protobuf.IParserResult;
  private readonly pkg: string;
  /** Type references, resolved once every symbol of the file is known. */
  private readonly references: Array<(symbols: SymbolTable) => void> = [];
  /** Custom options, interpreted once the file's own extensions are known. */
  private readonly custom: Array<{ options: Message; schema: DescMessage; entries: Array<{ name: string; value: unknown }>; scope: string }> = [];

  constructor(
    private readonly name: string,
    source: string,
    private readonly dependencies: readonly FileDescriptorProto[],
  ) {
    this.layout = readLayout(source);
    if (this.layout.edition !== undefined) throw new Error(`edition "${this.layout.edition}" files are not supported; use syntax = "proto3" or "proto2"`);
    (protobuf.parse as unknown as { filename: string | null }).filename = name;
    this.parsed = protobuf.parse(source, new protobuf.Root(), { keepCase: true });
    this.pkg = this.parsed.package ?? "";
  }

  compile(): FileDescriptorProto {
    const ns = this.pkg ? (this.parsed.root.lookup(this.pkg) as protobuf.Namespace) : this.parsed.root;
    const imports = this.layout.imports;
    const file = create(FileDescriptorProtoSchema, {
      name: this.name,
      dependency: imports.map((i) => i.name),
      publicDependency: indexesOf(imports, "public"),
      weakDependency: indexesOf(imports, "weak"),
      messageType: ns.nestedArray.filter(isMessage).map((t) => this.message(t, this.pkg, t.name)),
      enumType: ns.nestedArray.filter(isEnum).map((e) => this.enumType(e, this.pkg)),
      service: ns.nestedArray.filter(isService).map((s) => this.service(s)),
      extension: ns.nestedArray.filter(isExtension).map((f) => this.field(f, this.pkg)),
    });
    if (this.pkg) file.package = this.pkg;
    if (this.layout.syntax === "proto3") file.syntax = "proto3";
    // protoc resolves a file option's name from inside the package, as if the file were an element of it.
    this.options(FileOptionsSchema, ns as WithOptions, join(this.pkg, "file"), (o) => (file.options = o as FileDescriptorProto["options"]));
    const symbols = new SymbolTable();
    for (const dependency of this.dependencies) symbols.addFile(dependency);
    symbols.addFile(file);
    for (const resolve of this.references) resolve(symbols);
    this.interpretCustomOptions(file, symbols);
    return file;
  }

  private message(type: protobuf.Type, scope: string, pathInFile: string): DescriptorProto {
    const fullName = join(scope, type.name);
    // protoc lists real oneofs first, then the synthetic ones of proto3 `optional` fields.
    const oneofs = [...type.oneofsArray.filter((o) => !isSynthetic(o)), ...type.oneofsArray.filter(isSynthetic)];
    const entries = new Map<string, DescriptorProto>();
    const message = create(DescriptorProtoSchema, {
      name: type.name,
      // protobufjs adds a copy of each extension of this type to its fields (declaringField set): not ours.
      field: type.fieldsArray.filter((f) => !f.declaringField).map((f) => {
        const oneof = f.partOf ? oneofs.indexOf(f.partOf) : undefined;
        if (f instanceof protobuf.MapField) entries.set(f.name, this.mapEntry(f, fullName));
        return this.field(f, fullName, oneof);
      }),
      enumType: type.nestedArray.filter(isEnum).map((e) => this.enumType(e, fullName)),
      extension: type.nestedArray.filter(isExtension).map((f) => this.field(f, fullName)),
      oneofDecl: oneofs.map((o) => this.oneof(o, fullName)),
      extensionRange: (type.extensions ?? []).map(([start, end]) => ({ start, end: end + 1 })),
      reservedRange: (type.reserved ?? []).filter(isRange).map(([start, end]) => ({ start, end: end + 1 })),
      reservedName: (type.reserved ?? []).filter((r): r is string => typeof r === "string"),
    });
    const nested = new Map(type.nestedArray.filter(isMessage).map((t) => [t.name, this.message(t, fullName, `${pathInFile}.${t.name}`)]));
    message.nestedType = this.nestedTypeOrder(pathInFile, nested, entries);
    this.options(MessageOptionsSchema, type as unknown as WithOptions, fullName, (o) => (message.options = o as DescriptorProto["options"]));
    return message;
  }

  /** Nested messages and map entries in the order of the file (see proto-layout.ts). */
  private nestedTypeOrder(pathInFile: string, nested: Map<string, DescriptorProto>, entries: Map<string, DescriptorProto>): DescriptorProto[] {
    const ordered: DescriptorProto[] = [];
    for (const slot of this.layout.nestedTypeOrder.get(pathInFile) ?? []) {
      const found = slot.kind === "map" ? entries.get(slot.field) : nested.get(slot.name);
      if (found && !ordered.includes(found)) ordered.push(found);
    }
    // Anything the layout missed still belongs to the message.
    for (const found of [...nested.values(), ...entries.values()]) if (!ordered.includes(found)) ordered.push(found);
    return ordered;
  }

  private field(field: protobuf.Field, scope: string, oneofIndex?: number): FieldDescriptorProto {
    const fullName = join(scope, field.name);
    const jsonName = field.options?.json_name;
    const descriptor = create(FieldDescriptorProtoSchema, {
      name: field.name,
      number: field.id,
      label: labelOf(field),
      jsonName: typeof jsonName === "string" ? jsonName : protoCamelCase(field.name),
    });
    if (field instanceof protobuf.MapField) {
      descriptor.type = FieldType.MESSAGE;
      descriptor.typeName = `.${fullName.slice(0, fullName.length - field.name.length)}${mapEntryName(field.name)}`;
    } else {
      this.setType(descriptor, field.type, fullName, field.parent instanceof protobuf.Type ? field.parent : undefined);
    }
    if (field.extend !== undefined) {
      this.references.push((symbols) => (descriptor.extendee = `.${this.resolve(symbols, field.extend!, fullName, "extendee").name}`));
    }
    if (oneofIndex !== undefined) descriptor.oneofIndex = oneofIndex;
    if (field.options?.proto3_optional === true) descriptor.proto3Optional = true;
    if (field.options && "default" in field.options) descriptor.defaultValue = defaultValue(field.options.default);
    this.options(FieldOptionsSchema, field as unknown as WithOptions, fullName, (o) => (descriptor.options = o as FieldDescriptorProto["options"]));
    return descriptor;
  }

  /** A scalar type, or a reference resolved later to a message, enum or group. */
  private setType(descriptor: FieldDescriptorProto, typeName: string, fullName: string, parent?: protobuf.Type): void {
    const scalar = SCALAR_TYPES[typeName];
    if (scalar !== undefined) {
      descriptor.type = scalar;
      return;
    }
    const isGroup = parent?.nested?.[typeName] instanceof protobuf.Type && (parent.nested[typeName] as protobuf.Type & { group?: boolean }).group === true;
    this.references.push((symbols) => {
      const found = this.resolve(symbols, typeName, fullName, "type");
      if (found.kind !== "message" && found.kind !== "enum") throw new Error(`${fullName}: "${typeName}" is not a message or enum type`);
      descriptor.type = found.kind === "enum" ? FieldType.ENUM : isGroup ? FieldType.GROUP : FieldType.MESSAGE;
      descriptor.typeName = `.${found.name}`;
    });
  }

  /** The nested `XxxEntry { key = 1; value = 2; }` type protoc declares for a map field. */
  private mapEntry(field: protobuf.MapField, scope: string): DescriptorProto {
    const entryName = mapEntryName(field.name);
    const key = create(FieldDescriptorProtoSchema, { name: "key", number: 1, label: Label.OPTIONAL, type: SCALAR_TYPES[field.keyType], jsonName: "key" });
    const value = create(FieldDescriptorProtoSchema, { name: "value", number: 2, label: Label.OPTIONAL, jsonName: "value" });
    this.setType(value, field.type, join(scope, entryName, "value"));
    return create(DescriptorProtoSchema, { name: entryName, field: [key, value], options: { mapEntry: true } });
  }

  private oneof(oneof: protobuf.OneOf, scope: string) {
    const descriptor = create(OneofDescriptorProtoSchema, { name: oneof.name });
    this.options(OneofOptionsSchema, oneof as unknown as WithOptions, join(scope, oneof.name), (o) => (descriptor.options = o as typeof descriptor.options));
    return descriptor;
  }

  private enumType(e: protobuf.Enum, scope: string): EnumDescriptorProto {
    const fullName = join(scope, e.name);
    const descriptor = create(EnumDescriptorProtoSchema, {
      name: e.name,
      value: Object.entries(e.values).map(([name, number]) => {
        const value = create(EnumDescriptorProtoSchema.field.value.message!, { name, number }) as EnumDescriptorProto["value"][number];
        const flat = (e as unknown as { valuesOptions?: Record<string, Record<string, unknown>> }).valuesOptions?.[name];
        this.options(EnumValueOptionsSchema, { parsedOptions: entriesFromFlat(flat) }, join(scope, name), (o) => (value.options = o as typeof value.options));
        return value;
      }),
      // Enum reserved ranges include their end, unlike messages'.
      reservedRange: (e.reserved ?? []).filter(isRange).map(([start, end]) => ({ start, end })),
      reservedName: (e.reserved ?? []).filter((r): r is string => typeof r === "string"),
    });
    this.options(EnumOptionsSchema, e as unknown as WithOptions, fullName, (o) => (descriptor.options = o as typeof descriptor.options));
    return descriptor;
  }

  private service(service: protobuf.Service): ServiceDescriptorProto {
    const fullName = join(this.pkg, service.name);
    const descriptor = create(ServiceDescriptorProtoSchema, {
      name: service.name,
      method: service.methodsArray.map((m) => {
        const method = create(MethodDescriptorProtoSchema, { name: m.name });
        const methodName = join(fullName, m.name);
        this.references.push((symbols) => {
          method.inputType = `.${this.resolve(symbols, m.requestType, methodName, "request type").name}`;
          method.outputType = `.${this.resolve(symbols, m.responseType, methodName, "response type").name}`;
        });
        if (m.requestStream) method.clientStreaming = true;
        if (m.responseStream) method.serverStreaming = true;
        this.options(MethodOptionsSchema, m as unknown as WithOptions, methodName, (o) => (method.options = o as typeof method.options));
        return method;
      }),
    });
    this.options(ServiceOptionsSchema, service as unknown as WithOptions, fullName, (o) => (descriptor.options = o as typeof descriptor.options));
    return descriptor;
  }

  private resolve(symbols: SymbolTable, name: string, relativeTo: string, what: string) {
    const found = symbols.lookup(name, relativeTo, what !== "option");
    if (!found) throw new Error(`${relativeTo}: ${what} "${name}" is not defined`);
    return found;
  }

  /** Standard options now; custom ones once the file's symbols are known. */
  private options(schema: DescMessage, element: WithOptions, scope: string, set: (options: Message) => void): void {
    const entries = element.parsedOptions ?? undefined;
    const custom = customOptions(entries);
    const options = standardOptions(schema, entries) ?? (custom.length ? (create(schema) as Message) : undefined);
    if (!options) return;
    set(options);
    if (custom.length) this.custom.push({ options, schema, entries: custom, scope });
  }

  private interpretCustomOptions(file: FileDescriptorProto, symbols: SymbolTable): void {
    if (this.custom.length === 0) return;
    const byName = new Map(this.dependencies.map((d) => [d.name, d]));
    const registry = createFileRegistry(file, (name) => byName.get(name));
    for (const { options, schema, entries, scope } of this.custom) {
      for (const { name, value } of entries) {
        const symbol = this.resolve(symbols, name, scope, "option");
        const extension = registry.getExtension(symbol.name);
        if (!extension) throw new Error(`${scope}: option (${name}) is not an extension`);
        appendCustomOption(options, schema, extension, value, registry);
      }
    }
  }
}

/** The rule as written (protobufjs' `required` getter reads features, which are set only once resolved). */
function labelOf(field: protobuf.Field): Label {
  const rule = (field as unknown as { rule?: string }).rule;
  return field instanceof protobuf.MapField || rule === "repeated" ? Label.REPEATED : rule === "required" ? Label.REQUIRED : Label.OPTIONAL;
}

function indexesOf(imports: ProtoLayout["imports"], modifier: "public" | "weak"): number[] {
  return imports.flatMap((i, index) => (i.modifier === modifier ? [index] : []));
}

/** protoc's text of a proto2 default: numbers and booleans as written, inf and nan spelled out. */
function defaultValue(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) return Number.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
  return String(value);
}

const isMessage = (o: protobuf.ReflectionObject): o is protobuf.Type => o instanceof protobuf.Type;
const isEnum = (o: protobuf.ReflectionObject): o is protobuf.Enum => o instanceof protobuf.Enum;
const isService = (o: protobuf.ReflectionObject): o is protobuf.Service => o instanceof protobuf.Service;
const isExtension = (o: protobuf.ReflectionObject): o is protobuf.Field => o instanceof protobuf.Field && o.extend !== undefined;
const isRange = (r: number[] | string): r is number[] => Array.isArray(r);
const isSynthetic = (o: protobuf.OneOf) => o.fieldsArray.length === 1 && o.fieldsArray[0].options?.proto3_optional === true;
