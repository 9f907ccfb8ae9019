// Prints the plain closing line CI reads ("N passed, N failed, N skipped") from vitest's JSON report.
// A test file that fails to load has no failed test in it, so it counts as one failure of its own.
import { readFileSync } from 'node:fs';

const [file, vitestStatus] = process.argv.slice(2);
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const brokenFiles = report.testResults.filter(
  (r) => r.status === 'failed' && !r.assertionResults.some((a) => a.status === 'failed'),
);
for (const r of brokenFiles) console.log(`test file failed to run: ${r.name}: ${(r.message ?? '').split('\n')[0]}`);
const passed = report.numPassedTests;
const failed = report.numFailedTests + brokenFiles.length;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || Number(vitestStatus) !== 0 ? 1 : 0);
