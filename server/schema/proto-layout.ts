/**
 * What protobufjs' parser does not keep of a .proto file's layout, read from its tokens: the syntax
 * line, the imports in order with their `public`/`weak` modifiers, and, per message, where map fields
 * and groups stand among the nested messages (protoc declares a map's entry type, and a group's type,
 * at the field, in the order of the file).
 */
import * as protobuf from "protobufjs";

export interface ProtoImport {
  name: string;
  modifier?: "public" | "weak";
}

/** One member of a message that declares a nested type: an explicit message, a map field or a group. */
export type NestedTypeSlot = { kind: "message" | "group"; name: string } | { kind: "map"; field: string };

export interface ProtoLayout {
  /** "proto2", "proto3", or "" when the file has no syntax line (proto2). */
  syntax: string;
  /** Set for `edition = "…"` files. */
  edition?: string;
  imports: ProtoImport[];
  /** Keyed by the message's dotted path inside the file (e.g. "Outer.Inner"). */
  nestedTypeOrder: Map<string, NestedTypeSlot[]>;
}

type Scope = { kind: "message"; path: string } | { kind: "other" };

/** Reads the layout from the file's tokens; the parser has already checked the grammar. */
export function readLayout(source: string): ProtoLayout {
  const tn = protobuf.tokenize(source, false);
  const layout: ProtoLayout = { syntax: "", imports: [], nestedTypeOrder: new Map() };
  const scopes: Scope[] = [];
  let pending: Scope | undefined;
  const readString = () => {
    const quote = tn.next();
    const text = tn.next() ?? "";
    tn.skip(quote ?? '"');
    return text;
  };
  const current = (): Scope | undefined => scopes[scopes.length - 1];
  const record = (slot: NestedTypeSlot) => {
    const scope = current();
    if (scope?.kind !== "message") return;
    const slots = layout.nestedTypeOrder.get(scope.path) ?? [];
    slots.push(slot);
    layout.nestedTypeOrder.set(scope.path, slots);
  };
  const childPath = (name: string) => {
    const scope = current();
    return scope?.kind === "message" ? `${scope.path}.${name}` : name;
  };
  for (let token = tn.next(); token !== null; token = tn.next()) {
    if (token === '"' || token === "'") {
      tn.push(token);
      readString();
    } else if (scopes.length === 0 && (token === "syntax" || token === "edition") && tn.peek() === "=") {
      tn.next();
      const value = readString();
      if (token === "syntax") layout.syntax = value;
      else layout.edition = value;
    } else if (scopes.length === 0 && token === "import") {
      const modifier = tn.peek() === "public" || tn.peek() === "weak" ? (tn.next() as "public" | "weak") : undefined;
      layout.imports.push({ name: readString(), ...(modifier ? { modifier } : {}) });
    } else if (token === "message" && isIdentifier(tn.peek()) && current()?.kind !== "other") {
      const name = tn.next()!;
      record({ kind: "message", name });
      pending = { kind: "message", path: childPath(name) };
    } else if (token === "group" && isIdentifier(tn.peek())) {
      const name = tn.next()!;
      record({ kind: "group", name });
      pending = { kind: "message", path: childPath(name) };
    } else if (token === "map" && tn.peek() === "<") {
      for (let t = tn.next(); t !== ">" && t !== null; t = tn.next());
      record({ kind: "map", field: tn.next()! });
    } else if (token === "{") {
      scopes.push(pending ?? { kind: "other" });
      pending = undefined;
    } else if (token === "}") {
      scopes.pop();
    } else if (token === ";") {
      pending = undefined;
    }
  }
  return layout;
}

function isIdentifier(token: string | null): boolean {
  return token !== null && /^[A-Za-z_][A-Za-z0-9_]*$/.test(token);
}
