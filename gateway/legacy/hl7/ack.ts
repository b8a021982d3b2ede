import type { AdtHeader } from './adt.ts';

export type AckCode = 'AA' | 'AE' | 'AR';

/** HL7 v2 escape sequences, so that a reason can never add a field or a segment. */
function escape(text: string): string {
  return text.replace(/\\/g, '\\E\\').replace(/\|/g, '\\F\\').replace(/\^/g, '\\S\\').replace(/&/g, '\\T\\').replace(/~/g, '\\R\\').replace(/[\r\n]/g, ' ');
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** ERR-3 from HL7 table 0357, chosen by the kind of reason. */
function errCodeOf(reason: string): string {
  if (reason.endsWith(' missing')) return '101^Required field missing^HL70357';
  if (reason.endsWith(' invalid') || reason.endsWith(' malformed')) return '102^Data type error^HL70357';
  if (reason === 'message type not ADT') return '200^Unsupported message type^HL70357';
  if (reason === 'trigger event not accepted') return '201^Unsupported event code^HL70357';
  if (reason === 'control id reused with different content') return '205^Duplicate key identifier^HL70357';
  return '207^Application internal error^HL70357';
}

/**
 * The original-mode acknowledgement: receiver and sender swapped, MSA-2 echoing the message control id,
 * MSA-3 and ERR carrying the reason when the answer is not AA. The reason is ours (a stable phrase),
 * never a value from the message.
 */
export function buildAck(code: AckCode, header: Partial<AdtHeader> | undefined, ackId: string, reason?: string, now = new Date()): string {
  const h = header ?? {};
  const segments = [
    ['MSH', '^~\\&', escape(h.receivingApplication ?? ''), escape(h.receivingFacility ?? ''), escape(h.sendingApplication ?? ''), escape(h.sendingFacility ?? ''), timestamp(now), '', `ACK^${escape(h.trigger ?? '')}^ACK`, ackId, 'P', escape(h.version || '2.5.1')].join('|'),
    ['MSA', code, escape(h.controlId ?? ''), escape(reason ?? '')].join('|'),
  ];
  if (code !== 'AA') segments.push(['ERR', '', '', errCodeOf(reason ?? ''), 'E', '', '', escape(reason ?? '')].join('|'));
  return segments.join('\r');
}
