# The seed's Python worker example, verbatim from the seed document (the API's
# original document, see docs/api.md), its "Python Worker Example".
# Its undefined names (API_URL, job_id, worker_id, loss, acc) are supplied by
# tests/contract/test_seed_worker.py, which runs it against `jobwatch serve`.
# ruff: noqa
import requests
import time
import subprocess

def get_gpu_metrics():
    """Get GPU metrics using nvidia-smi"""
    try:
        result = subprocess.run([
            'nvidia-smi',
            '--query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw',
            '--format=csv,noheader,nounits'
        ], capture_output=True, text=True)
        
        values = result.stdout.strip().split(',')
        return {
            'gpuUtilization': float(values[0]),
            'gpuMemoryUsed': float(values[1]),
            'gpuMemoryTotal': float(values[2]),
            'gpuTemperature': float(values[3]),
            'powerUsage': float(values[4])
        }
    except Exception as e:
        print(f"Error getting GPU metrics: {e}")
        return None

def report_progress(job_id, worker_id, progress, operation, logs=[]):
    """Report progress to backend"""
    metrics = get_gpu_metrics()
    
    data = {
        'workerId': worker_id,
        'progress': progress,
        'currentOperation': operation,
        'metrics': metrics,
        'logLines': logs
    }
    
    response = requests.post(
        f'{API_URL}/api/jobs/{job_id}/progress',
        json=data
    )
    
    result = response.json()
    print(f"Progress: {progress}% - Time remaining: {result.get('timeRemaining')}s")
    return result

# Example usage in training loop
for epoch in range(10):
    # Training code here...
    
    progress = int((epoch + 1) / 10 * 100)
    operation = f'Training epoch {epoch + 1}/10'
    logs = [
        {'level': 'info', 'message': f'Epoch {epoch + 1} completed'},
        {'level': 'info', 'message': f'Loss: {loss:.4f}, Accuracy: {acc:.2f}%'}
    ]
    
    report_progress(job_id, worker_id, progress, operation, logs)
    time.sleep(10)  # Report every 10 seconds
