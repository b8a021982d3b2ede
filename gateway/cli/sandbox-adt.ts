import { parseOptions, UsageError } from './command.ts';
import { ackCode, sendMllp } from '../legacy/hl7/client.ts';
import { sampleAdt, type AdtTrigger } from '../sandbox/adt.ts';

const TRIGGERS: readonly AdtTrigger[] = ['A01', 'A02', 'A03', 'A04', 'A08', 'A40'];

/** `hcgw sandbox send-adt A03 --encounter e-p1-1`: one synthetic ADT message to an MLLP listener. */
export async function sandbox(args: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    {
      encounter: { type: 'string' },
      patient: { type: 'string' },
      'merged-patient': { type: 'string' },
      'control-id': { type: 'string' },
      facility: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '2575' },
      'timeout-ms': { type: 'string', default: '10000' },
    },
    true,
  );
  const [sub, trigger] = positionals;
  if (sub !== 'send-adt' || !TRIGGERS.includes(trigger as AdtTrigger)) {
    throw new UsageError(`sandbox send-adt needs a trigger: ${TRIGGERS.join(', ')}`);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UsageError('--port must be a TCP port');
  const message = sampleAdt(trigger as AdtTrigger, { encounter: values.encounter, patient: values.patient, mergedPatient: values['merged-patient'], controlId: values['control-id'], facility: values.facility });
  let ack: string;
  try {
    [ack] = await sendMllp([message], { host: values.host!, port, timeoutMs: Number(values['timeout-ms']) });
  } catch (err) {
    // Nothing listening (the sandbox not started yet) is the common case: say so, without a stack trace.
    const code = (err as NodeJS.ErrnoException).code;
    process.stderr.write(`hcgw sandbox send-adt: no ACK from ${values.host}:${port} (${code ?? (err as Error).message}); is the gateway running (npm start)?\n`);
    return 1;
  }
  const a = ackCode(ack);
  out.write(`${JSON.stringify({ sent: `ADT^${trigger}`, controlId: /^MSH(?:\|[^|]*){8}\|([^|]*)/.exec(message)?.[1], ack: a.code, ...(a.text ? { reason: a.text } : {}) })}\n`);
  return a.code === 'AA' ? 0 : 1;
}

export const run = (args: string[]) => sandbox(args);
