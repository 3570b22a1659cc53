/** The prefix of every `google.protobuf.Any` type URL: `type.googleapis.com/<full message name>`. */
export const TYPE_URL_PREFIX = "type.googleapis.com/";
