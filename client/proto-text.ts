/**
 * A FileDescriptorProto printed back as .proto source that compiles (with protoc or buf) to the same
 * descriptor: imports, options (custom ones by their extension's name, looked up in `registry`),
 * maps from their entry types, proto3 `optional`, oneofs, groups, reserved and extension ranges.
 * Type and option names are written fully qualified (leading dot), so they resolve the same way anywhere.
 * Comments are not in descriptors and are not printed.
 */
import { getExtension, isFieldSet, type DescField, type DescMessage, type Message, type Registry } from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import { toText } from "@bufbuild/protobuf/txtpb";
import {
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as FieldType,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileOptionsSchema,
  MessageOptionsSchema,
  MethodOptionsSchema,
  OneofOptionsSchema,
  ServiceOptionsSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  type ServiceDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { SCALAR_NAMES } from "../common/proto-scalars";

/** The largest field number, which `max` stands for in ranges. */
const MAX_FIELD_NUMBER = 536870911;

/** The .proto source of `file`; `registry` holds the extensions its custom options use. */
export function printProto(file: FileDescriptorProto, registry: Registry): string {
  if (file.syntax === "editions") throw new Error(`${file.name}: edition files cannot be printed yet`);
  const proto3 = file.syntax === "proto3";
  const out = new Printer(registry, proto3);
  out.line(`syntax = "${proto3 ? "proto3" : "proto2"}";`);
  if (file.package) out.blank().line(`package ${file.package};`);
  if (file.dependency.length) out.blank();
  file.dependency.forEach((dependency, i) => {
    const modifier = file.publicDependency.includes(i) ? "public " : file.weakDependency.includes(i) ? "weak " : "";
    out.line(`import ${modifier}${quote(dependency)};`);
  });
  const options = out.options(FileOptionsSchema, file.options);
  if (options.length) out.blank();
  for (const option of options) out.line(`option ${option};`);
  for (const message of file.messageType) out.blank().message(message);
  for (const e of file.enumType) out.blank().enumType(e);
  for (const service of file.service) out.blank().service(service);
  if (file.extension.length) out.blank().extensions(file.extension);
  return out.text();
}

class Printer {
  private readonly lines: string[] = [];
  private depth = 0;

  constructor(
    private readonly registry: Registry,
    private readonly proto3: boolean,
  ) {}

  text(): string {
    return `${this.lines.join("\n")}\n`;
  }

  line(text: string): this {
    this.lines.push(`${"  ".repeat(this.depth)}${text}`);
    return this;
  }

  blank(): this {
    if (this.lines.length && this.lines[this.lines.length - 1] !== "") this.lines.push("");
    return this;
  }

  block(head: string, body: () => void): void {
    this.line(`${head} {`);
    this.depth++;
    body();
    this.depth--;
    this.line("}");
  }

  message(message: DescriptorProto, head = `message ${message.name}`): void {
    this.block(head, () => this.messageBody(message));
  }

  /**
   * Fields in order, with each nested type where protoc meets it: explicit messages between the
   * fields, a map's entry type or a group's type at its field.
   */
  private messageBody(message: DescriptorProto): void {
    for (const option of this.options(MessageOptionsSchema, message.options)) this.line(`option ${option};`);
    const implicit = (nested: DescriptorProto) => message.field.find((f) => f.typeName?.endsWith(`.${message.name}.${nested.name}`) && (nested.options?.mapEntry || f.type === FieldType.GROUP));
    let printed = 0;
    const printFieldsThrough = (last: number) => {
      while (printed <= last) printed = this.fieldOrOneof(message, printed);
    };
    for (const nested of message.nestedType) {
      const field = implicit(nested);
      if (field) printFieldsThrough(message.field.indexOf(field));
      else this.message(nested);
    }
    printFieldsThrough(message.field.length - 1);
    for (const e of message.enumType) this.enumType(e);
    if (message.extension.length) this.extensions(message.extension);
    for (const range of message.extensionRange) this.line(`extensions ${rangeText(range.start!, range.end! - 1)};`);
    if (message.reservedRange.length) this.line(`reserved ${message.reservedRange.map((r) => rangeText(r.start!, r.end! - 1)).join(", ")};`);
    if (message.reservedName.length) this.line(`reserved ${message.reservedName.map(quote).join(", ")};`);
  }

  /** Prints field `index` (or the whole real oneof it opens); returns the index after it. */
  private fieldOrOneof(message: DescriptorProto, index: number): number {
    const field = message.field[index];
    if (!isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) || field.proto3Optional) {
      this.field(field, message);
      return index + 1;
    }
    const oneof = message.oneofDecl[field.oneofIndex];
    let next = index;
    this.block(`oneof ${oneof.name}`, () => {
      for (const option of this.options(OneofOptionsSchema, oneof.options)) this.line(`option ${option};`);
      for (; next < message.field.length && isFieldSet(message.field[next], FieldDescriptorProtoSchema.field.oneofIndex) && message.field[next].oneofIndex === field.oneofIndex; next++) this.field(message.field[next], message, true);
    });
    return next;
  }

  private field(field: FieldDescriptorProto, parent?: DescriptorProto, inOneof = false): void {
    // Only map fields refer to entry types (protoc forbids naming one).
    const entry = parent?.nestedType.find((n) => n.options?.mapEntry && field.typeName?.endsWith(`.${n.name}`) && field.label === Label.REPEATED);
    const options = this.fieldOptions(field);
    const suffix = `${field.name} = ${field.number}${options.length ? ` [${options.join(", ")}]` : ""}`;
    if (entry) {
      const [key, value] = entry.field;
      return void this.line(`map<${typeText(key)}, ${typeText(value)}> ${suffix};`);
    }
    if (field.type === FieldType.GROUP) {
      const group = parent?.nestedType.find((n) => field.typeName?.endsWith(`.${n.name}`));
      if (group) return void this.block(`${inOneof ? "" : labelText(field, this.proto3)}group ${group.name} = ${field.number}${options.length ? ` [${options.join(", ")}]` : ""}`, () => this.messageBody(group));
    }
    this.line(`${inOneof ? "" : labelText(field, this.proto3)}${typeText(field)} ${suffix};`);
  }

  private fieldOptions(field: FieldDescriptorProto): string[] {
    const pseudo: string[] = [];
    if (isFieldSet(field, FieldDescriptorProtoSchema.field.jsonName) && field.jsonName !== protoCamelCase(field.name!)) pseudo.push(`json_name = ${quote(field.jsonName)}`);
    if (isFieldSet(field, FieldDescriptorProtoSchema.field.defaultValue)) pseudo.push(`default = ${defaultText(field)}`);
    return [...pseudo, ...this.options(FieldOptionsSchema, field.options)];
  }

  enumType(e: EnumDescriptorProto): void {
    this.block(`enum ${e.name}`, () => {
      for (const option of this.options(EnumOptionsSchema, e.options)) this.line(`option ${option};`);
      for (const value of e.value) {
        const options = this.options(EnumValueOptionsSchema, value.options);
        this.line(`${value.name} = ${value.number}${options.length ? ` [${options.join(", ")}]` : ""};`);
      }
      // Enum reserved ranges include their end.
      if (e.reservedRange.length) this.line(`reserved ${e.reservedRange.map((r) => rangeText(r.start!, r.end!)).join(", ")};`);
      if (e.reservedName.length) this.line(`reserved ${e.reservedName.map(quote).join(", ")};`);
    });
  }

  service(service: ServiceDescriptorProto): void {
    this.block(`service ${service.name}`, () => {
      for (const option of this.options(ServiceOptionsSchema, service.options)) this.line(`option ${option};`);
      for (const method of service.method) {
        const head = `rpc ${method.name}(${method.clientStreaming ? "stream " : ""}${method.inputType}) returns (${method.serverStreaming ? "stream " : ""}${method.outputType})`;
        const options = this.options(MethodOptionsSchema, method.options);
        if (options.length === 0) this.line(`${head};`);
        else this.block(head, () => options.forEach((o) => this.line(`option ${o};`)));
      }
    });
  }

  /** Extensions grouped by what they extend, in order. */
  extensions(extensions: FieldDescriptorProto[]): void {
    for (let i = 0; i < extensions.length; ) {
      const extendee = extensions[i].extendee;
      this.block(`extend ${extendee}`, () => {
        for (; extensions[i]?.extendee === extendee; i++) this.field(extensions[i]);
      });
    }
  }

  /** `name = value` for every option set in `options`: standard fields first, then custom ones in order. */
  options(schema: DescMessage, options: Message | undefined): string[] {
    if (!options) return [];
    const texts: string[] = [];
    for (const field of schema.fields) {
      if (!isFieldSet(options, field)) continue;
      const value = (options as unknown as Record<string, unknown>)[field.localName];
      const values = field.fieldKind === "list" ? (value as unknown[]) : [value];
      for (const v of values) texts.push(`${field.name} = ${this.valueText(field, v)}`);
    }
    const numbers = [...new Set((options.$unknown ?? []).map((u) => u.no))];
    for (const no of numbers) {
      const extension = this.registry.getExtensionFor(schema, no);
      if (!extension) throw new Error(`option number ${no} of ${schema.typeName} is an extension the served files do not declare`);
      const value = getExtension(options as never, extension as never) as unknown;
      const values = extension.fieldKind === "list" ? (value as unknown[]) : [value];
      for (const v of values) texts.push(`(.${extension.typeName}) = ${this.valueText(extension, v)}`);
    }
    return texts;
  }

  private valueText(field: Pick<DescField, "fieldKind" | "enum" | "message" | "scalar">, value: unknown): string {
    if (field.message) return `{ ${toText(field.message, value as never, { registry: this.registry }).trim().split("\n").map((l) => l.trim()).join(" ")} }`;
    if (field.enum) return field.enum.values.find((v) => v.number === value)?.name ?? String(value);
    if (typeof value === "string") return quote(value);
    if (value instanceof Uint8Array) return bytesText(value);
    return String(value);
  }
}

function labelText(field: FieldDescriptorProto, proto3: boolean): string {
  if (field.label === Label.REPEATED) return "repeated ";
  if (field.label === Label.REQUIRED) return "required ";
  return !proto3 || field.proto3Optional ? "optional " : "";
}

function typeText(field: FieldDescriptorProto): string {
  return SCALAR_NAMES[field.type!] ?? field.typeName!;
}

function rangeText(start: number, end: number): string {
  if (start === end) return String(start);
  return `${start} to ${end >= MAX_FIELD_NUMBER ? "max" : end}`;
}

function defaultText(field: FieldDescriptorProto): string {
  const value = field.defaultValue!;
  if (field.type === FieldType.STRING) return quote(value);
  // protoc keeps a bytes default C-escaped already.
  if (field.type === FieldType.BYTES) return `"${value}"`;
  return value;
}

function quote(text: string): string {
  return JSON.stringify(text);
}

function bytesText(bytes: Uint8Array): string {
  let text = '"';
  for (const b of bytes) text += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, "0")}`;
  return `${text}"`;
}
