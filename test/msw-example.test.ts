// Runs examples/testing-with-msw.test.ts, the documented example of drainpipe-http2/testing, as part of
// the suite: vitest collects only test/**/*.test.ts, and tests an imported module declares run here.
import '../examples/testing-with-msw.test.js'
