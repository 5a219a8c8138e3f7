// The seed's "React Component Example", verbatim from the seed document
// (shared/seed/000_6259494c81bd8af5.txt). Only the constant before it and the
// mounting after it are ours; tests/browser/test_seed_react.py bundles this file
// with esbuild (React 18, recharts 2 from npm) and opens it in headless Chromium
// at jobwatch's origin.
const WS_URL = `ws://${window.location.host}/ws`;
// --- the seed's code, verbatim ---
import { useEffect, useState } from 'react';
import { LineChart, Line, XAxis, YAxis, Tooltip } from 'recharts';

function JobMonitor({ jobId }) {
  const [job, setJob] = useState(null);
  const [metrics, setMetrics] = useState([]);
  const [logs, setLogs] = useState([]);
  const [timeRemaining, setTimeRemaining] = useState(null);
  const [costSoFar, setCostSoFar] = useState(null);

  useEffect(() => {
    // Fetch initial data
    fetch(`/api/jobs/${jobId}/monitor`)
      .then(res => res.json())
      .then(data => {
        setJob(data.job);
        setMetrics(data.metrics.history);
        setLogs(data.logs);
        setTimeRemaining(data.timeRemaining);
        setCostSoFar(data.costSoFar);
      });

    // Subscribe to WebSocket updates
    const ws = new WebSocket(WS_URL);
    
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: 'subscribe:job',
        subscriptionId: jobId
      }));
    };

    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      
      if (message.type === 'JOB_PROGRESS') {
        const { progress, currentOperation, metrics: newMetrics, timeRemaining, costSoFar } = message.data;
        
        setJob(prev => ({
          ...prev,
          progress,
          currentOperation
        }));
        
        if (newMetrics) {
          setMetrics(prev => [...prev.slice(-29), newMetrics]);
        }
        
        setTimeRemaining(timeRemaining);
        setCostSoFar(costSoFar);
      }
      
      if (message.type === 'JOB_LOGS') {
        setLogs(prev => [...prev, ...message.data.logs]);
      }
    };

    return () => ws.close();
  }, [jobId]);

  return (
    <div>
      <h2>Job {jobId}</h2>
      <p>Status: {job?.status}</p>
      <p>Progress: {job?.progress}%</p>
      <p>Operation: {job?.currentOperation}</p>
      <p>Time Remaining: {timeRemaining}s</p>
      <p>Cost So Far: {costSoFar} QUBIC</p>
      
      <LineChart width={600} height={300} data={metrics}>
        <XAxis dataKey="timestamp" />
        <YAxis />
        <Tooltip />
        <Line dataKey="gpuUtilization" stroke="#8884d8" />
        <Line dataKey="gpuTemperature" stroke="#82ca9d" />
      </LineChart>
      
      <div>
        <h3>Logs</h3>
        {logs.map((log, i) => (
          <div key={i}>[{log.level}] {log.message}</div>
        ))}
      </div>
    </div>
  );
}
// --- end of the seed's code ---

import { createRoot } from 'react-dom/client';

const jobId = new URLSearchParams(window.location.search).get('jobId');
createRoot(document.getElementById('root')).render(<JobMonitor jobId={jobId} />);
