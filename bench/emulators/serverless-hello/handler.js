// The trivial hello handler that bench/run's `emulators` scenario serves both
// through serverless-offline and as an Updraft `nodejs` function.
exports.hello = async () => ({ statusCode: 200, body: "ok" });
