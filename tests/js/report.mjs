// How the client scripts report to the Rust tests that spawn them: one JSON line on stdout with
// what the script saw (`result`), exit code 0 when it ran to its end, 1 on an exception, 2 when
// it did not finish in time (naming the last of `result.steps`, if it keeps any). `cleanup`
// (closing browsers, killing servers) runs first. The Rust side makes the assertions.
export function report(result, timeoutMs = 20000, cleanup = async () => {}) {
  const finish = async (code = 0) => {
    await cleanup().catch(() => {});
    console.log(JSON.stringify(result));
    process.exit(code);
  };
  setTimeout(() => {
    result.error = result.steps ? `timeout after step ${result.steps.at(-1)}` : "timeout";
    finish(2);
  }, timeoutMs);
  // Runs the async `main` and reports its outcome.
  const run = (main) =>
    main().then(
      () => finish(0),
      (e) => {
        result.error = String((e && e.stack) || e);
        finish(1);
      },
    );
  return { finish, run };
}
