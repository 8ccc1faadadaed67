// Starts an example binary for a browser test and resolves once it printed `readyLine` (its
// address) on stdout.
import { spawn } from "node:child_process";

export function startExample(binary, env, readyLine) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes(readyLine)) resolve(child);
    });
    child.on("exit", (code) => reject(new Error(`${binary} exited with ${code}: ${out}`)));
  });
}
