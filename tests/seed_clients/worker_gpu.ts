// The seed's "Progress Update with GPU Metrics" example, verbatim from the seed document
// (shared/seed/000_6259494c81bd8af5.txt). Only the constants before it are ours;
// tests/test_seed_clients.py bundles it with esbuild and runs it in Node 20.
const API_URL = process.env.API_URL;
const jobId = process.env.JOB_ID;
// --- the seed's code, verbatim ---
await fetch(`${API_URL}/api/jobs/${jobId}/progress`, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({
    workerId: 'your_worker_id',
    progress: 45,
    currentOperation: 'Training epoch 5/10',
    metrics: {
      gpuUtilization: 87,      // 0-100
      gpuMemoryUsed: 18000,    // MB
      gpuMemoryTotal: 24000,   // MB
      gpuTemperature: 72,      // Celsius
      powerUsage: 350          // Watts
    }
  })
});
// --- end of the seed's code ---
