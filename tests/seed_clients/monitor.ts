// The seed's "Get Initial Monitoring Data" example, verbatim from the seed document
// (shared/seed/000_6259494c81bd8af5.txt). Only the constants before it are ours;
// tests/test_seed_clients.py bundles it with esbuild and runs it in Node 20.
const API_URL = process.env.API_URL;
const jobId = process.env.JOB_ID;
// --- the seed's code, verbatim ---
const response = await fetch(`${API_URL}/api/jobs/${jobId}/monitor`);
const data = await response.json();

// Access job details
console.log(`Status: ${data.job.status}`);
console.log(`Progress: ${data.job.progress}%`);
console.log(`Operation: ${data.job.currentOperation}`);

// Access latest metrics
if (data.metrics.latest) {
  console.log(`GPU: ${data.metrics.latest.gpuUtilization}%`);
  console.log(`Temp: ${data.metrics.latest.gpuTemperature}°C`);
}

// Access metrics history for charts
const metricsHistory = data.metrics.history;

// Access logs
const logs = data.logs;

// Access calculations
console.log(`Time remaining: ${data.timeRemaining}s`);
console.log(`Cost so far: ${data.costSoFar} QUBIC`);
// --- end of the seed's code ---
