// The seed's "Progress Update with Logs" example, verbatim from the seed document
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
    logLines: [
      { level: 'info', message: 'Epoch 5/10 completed' },
      { level: 'info', message: 'Loss: 0.0234, Accuracy: 98.5%' },
      { level: 'warning', message: 'GPU temperature high: 82°C' }
    ]
  })
});
// --- end of the seed's code ---
