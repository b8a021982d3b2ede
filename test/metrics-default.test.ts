import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from './helpers.ts';

let gw: TestGateway;
before(async () => {
  gw = await startGateway('version: 1\nroutes: []\n');
});
after(async () => gw?.close());

test('/metrics exports the standard process_* and nodejs_* metrics (heap, event-loop lag, GC) beside hcgw_*', async () => {
  // Some allocation and a GC-worthy burst so the GC histogram has something to show.
  for (let i = 0; i < 3; i++) JSON.stringify(Array.from({ length: 50_000 }, (_, j) => ({ j })));
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds', 'nodejs_active_handles_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.match(text, /^process_resident_memory_bytes [1-9]/m);
  assert.match(text, /^# TYPE hcgw_requests_total counter/m);
});
