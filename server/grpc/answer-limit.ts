/**
 * Unary answers within the message limit (--max-message-bytes). grpc-js refuses a response over
 * grpc.max_send_message_length with its own RESOURCE_EXHAUSTED, "Sent message larger than max
 * (2400098 vs. 1048576)", which names neither the answer nor what to do. Each answer is encoded
 * here instead, once (sent as that frame: framed-messages.ts), and one over the limit is refused
 * saying what it was, its size, the limit and what to do. Apply's and the Jacobian's answers are
 * sized before they are encoded, and send their big arrays as they are (answer-encoding.ts).
 */
import { Code, TesseractError } from "../../common/errors";
import { FramedMessage, FRAME_PREFIX_BYTES } from "./framed-messages";
import { sizedApplyAnswer, sizedJacobianAnswer, type SizedAnswer } from "./answer-encoding";

const RAISE_LIMIT = "raise it on the server and on the client (the SDK's maxMessageBytes, the CLI's --max-message-bytes)";

/** What to do about an answer too big, by RPC. */
const ADVICE: Record<string, string> = {
  Jacobian: "stream it row by row with the gRPC JacobianRows (or the CLI's jacobian --stream or --out)",
};

/** The answers sized before they are encoded, by RPC. */
const SIZED: Record<string, ((response: never) => SizedAnswer) | undefined> = { Apply: sizedApplyAnswer, Jacobian: sizedJacobianAnswer };

/** `response` encoded in its frame; RESOURCE_EXHAUSTED naming `rpc`'s answer when it is over `maxBytes`. */
export function framedAnswer(rpc: string, encode: (response: unknown) => Buffer, response: unknown, maxBytes: number): FramedMessage {
  const sized = SIZED[rpc]?.(response as never);
  const message = sized ? undefined : encode(response);
  const bytes = sized ? sized.bytes : message!.length;
  if (bytes > maxBytes) {
    throw new TesseractError(Code.RESOURCE_EXHAUSTED, `the ${rpc} answer is ${bytes} bytes, over the ${maxBytes}-byte message limit (--max-message-bytes); ${ADVICE[rpc] ?? RAISE_LIMIT}`);
  }
  if (sized) return sized.encode();
  const frame = FramedMessage.allocate(bytes);
  message!.copy(frame, FRAME_PREFIX_BYTES);
  return new FramedMessage(frame);
}
