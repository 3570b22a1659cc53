/**
 * The names a .proto file can refer to, and protoc's rule for resolving a relative name against
 * them (its LookupSymbol): from the scope of the element that names it outwards, the first
 * scope that holds the name's first component decides.
 */
import type { DescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";

export type SymbolKind = "package" | "message" | "enum" | "service" | "member";

export interface ResolvedSymbol {
  /** Fully qualified, without the leading dot. */
  name: string;
  kind: SymbolKind;
}

const isType = (kind: SymbolKind) => kind === "message" || kind === "enum";
const isAggregate = (kind: SymbolKind) => kind !== "member";

export class SymbolTable {
  private readonly symbols = new Map<string, SymbolKind>();

  /** Every name a compiled file declares: its package, types, members, services and extensions. */
  addFile(file: FileDescriptorProto): void {
    const pkg = file.package ?? "";
    const parts = pkg ? pkg.split(".") : [];
    parts.forEach((_, i) => this.add(parts.slice(0, i + 1).join("."), "package"));
    for (const message of file.messageType) this.addMessage(join(pkg, message.name), message);
    for (const e of file.enumType) this.addEnum(pkg, e.name, e.value.map((v) => v.name));
    for (const ext of file.extension) this.add(join(pkg, ext.name), "member");
    for (const service of file.service) {
      this.add(join(pkg, service.name), "service");
      for (const method of service.method) this.add(join(pkg, service.name, method.name), "member");
    }
  }

  /**
   * Resolves `name` as written in the element whose full name is `relativeTo` (protoc's rule);
   * `typesOnly` skips symbols that are not messages or enums when the whole name matched.
   */
  lookup(name: string, relativeTo: string, typesOnly: boolean): ResolvedSymbol | undefined {
    if (name.startsWith(".")) return this.found(name.slice(1));
    const dot = name.indexOf(".");
    const first = dot < 0 ? name : name.slice(0, dot);
    for (let scope = relativeTo; ; ) {
      const cut = scope.lastIndexOf(".");
      if (cut < 0) {
        const global = this.found(name);
        return global && (!typesOnly || dot >= 0 || isType(global.kind)) ? global : undefined;
      }
      scope = scope.slice(0, cut);
      const kind = this.symbols.get(join(scope, first));
      if (kind === undefined) continue;
      if (dot >= 0) {
        // A compound name whose first part is found here must resolve here, unless that part cannot hold names.
        if (isAggregate(kind)) return this.found(join(scope, name));
      } else if (!typesOnly || isType(kind)) {
        return { name: join(scope, first), kind };
      }
    }
  }

  private found(name: string): ResolvedSymbol | undefined {
    const kind = this.symbols.get(name);
    return kind === undefined ? undefined : { name, kind };
  }

  private add(name: string, kind: SymbolKind): void {
    if (!this.symbols.has(name) || kind !== "package") this.symbols.set(name, kind);
  }

  private addMessage(name: string, message: DescriptorProto): void {
    this.add(name, "message");
    for (const field of [...message.field, ...message.extension]) this.add(join(name, field.name), "member");
    for (const oneof of message.oneofDecl) this.add(join(name, oneof.name), "member");
    for (const nested of message.nestedType) this.addMessage(join(name, nested.name), nested);
    for (const e of message.enumType) this.addEnum(name, e.name, e.value.map((v) => v.name));
  }

  /** Enum values are scoped beside their enum, as in C++. */
  private addEnum(scope: string, name: string, values: string[]): void {
    this.add(join(scope, name), "enum");
    for (const value of values) this.add(join(scope, value), "member");
  }
}

export function join(...parts: string[]): string {
  return parts.filter(Boolean).join(".");
}
