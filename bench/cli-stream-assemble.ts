/**
 * For bench/cli-stream.ts: what `jacobian --stream` did before it streamed to its output — the
 * JacobianRows stream assembled into one Jacobian in memory (as the SDK's assembleJacobian does),
 * printed as nothing. Arguments: ADDRESS PAYLOAD_FILE (the CLI's payload with inputs and paths).
 */
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { assembleJacobian, TesseractClient } from "../client";
import { SparsityMode } from "../index";
import { Inputs, Outputs } from "../generated/tesseract/examples/heat/v1/heat";
import ndarray from "ndarray";

async function main(): Promise<void> {
  const [address, payloadFile] = process.argv.slice(2);
  const payload = JSON.parse(fs.readFileSync(payloadFile, "utf8"));
  const initial = Float64Array.from(payload.inputs.initial_temperature as number[]);
  const client = new TesseractClient(address, { inputs: Inputs, outputs: Outputs }, { credentials: grpc.credentials.createInsecure() });
  const inputs = { initial_temperature: ndarray(initial, [initial.length]), diffusivity: ndarray(Float64Array.of(1), []), steps: 1, dt: 0, dx: 0 };
  const options = { sparsity_mode: SparsityMode[payload.options?.sparsity_mode as keyof typeof SparsityMode] };
  const { stats } = await assembleJacobian(client.jacobianRows({ inputs, inputPaths: payload.jac_inputs, outputPaths: payload.jac_outputs, options }));
  process.stderr.write(`stats: ${stats.apply_calls} apply calls\n`);
  client.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
