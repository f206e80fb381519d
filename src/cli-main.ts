import { runCli } from './cli.js';

runCli(process.argv).catch((err) => {
  process.stderr.write(`ayni: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
