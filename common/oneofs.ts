/**
 * A protobuf oneof holds one member: a JSON message that sets two was encoded with both, and the
 * receiver kept the last (the CLI answered for `beta` where `alpha` was given too, exit 0).
 */
import type * as protobuf from "protobufjs";
import { invalidArgument } from "./errors";
import { ownValue } from "./records";

/** Refuses a message (`set` holds its fields' names) that sets more than one member of a oneof; `where` names the message. */
export function refuseTwoOfOneof(type: protobuf.Type, set: Record<string, unknown>, where: string): void {
  for (const oneof of type.oneofsArray) {
    const members = oneof.oneof.filter((name) => ownValue(set, name) !== undefined);
    if (members.length > 1) throw invalidArgument(`${where}: ${members.join(" and ")} are both set, but they are members of oneof ${oneof.name}; set one of them`);
  }
}
