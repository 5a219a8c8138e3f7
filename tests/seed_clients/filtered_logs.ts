// The seed's "Get Filtered Logs" example, verbatim from the seed document
// (shared/seed/000_6259494c81bd8af5.txt). Only the constants before it are ours;
// tests/test_seed_clients.py bundles it with esbuild and runs it in Node 20.
const API_URL = process.env.API_URL;
const jobId = process.env.JOB_ID;
// --- the seed's code, verbatim ---
// Get info logs only
const response = await fetch(`${API_URL}/api/jobs/${jobId}/logs?level=info&limit=50`);
const data = await response.json();

data.logs.forEach(log => {
  console.log(`[${log.level}] ${log.timestamp}: ${log.message}`);
});

// Pagination
const page2 = await fetch(`${API_URL}/api/jobs/${jobId}/logs?limit=50&offset=50`);
// --- end of the seed's code ---
