import { describe, expect, it } from 'vitest';
import { parseLabels, ratesBetween, toolTotals } from '../../console/src/metrics.js';
import { argumentsFrom, fieldsOf, initialValues } from '../../console/src/schema-fields.js';

/** The console's pure parts: what its charts compute from /metrics, and the arguments its forms make. */
describe("the console's call charts", () => {
  const scrape = (echo: number, seconds: number, broadcast = 0) => `# HELP mcp_tool_executions_total Tool calls by tool and outcome
# TYPE mcp_tool_executions_total counter
mcp_tool_executions_total{tool_id="alpha__echo",status="ok"} ${echo}
mcp_tool_executions_total{tool_id="alpha__fail",status="error"} 1
mcp_tool_executions_total{tool_id="broadcast__echo",status="ok"} ${broadcast}
mcp_tool_execution_duration_seconds_bucket{tool_id="alpha__echo",le="0.005"} 1
mcp_tool_execution_duration_seconds_sum{tool_id="alpha__echo"} ${seconds}
mcp_tool_execution_duration_seconds_count{tool_id="alpha__echo"} ${echo}
mcp_tool_execution_duration_seconds_sum{tool_id="alpha__fail"} 0.5
mcp_tool_execution_duration_seconds_count{tool_id="alpha__fail"} 1
conflux_http_requests_total{route="/mcp",method="POST",status="200"} 7
`;
  const serverOf = (tool: string) => (tool.startsWith('alpha__') ? 'alpha' : undefined);

  it('sums calls and time per server, counting names it cannot place as other', () => {
    const totals = toolTotals(scrape(10, 2, 3), 1000, serverOf);
    expect(Object.fromEntries(totals.servers)).toEqual({ alpha: { calls: 11, seconds: 2.5, timed: 11 }, other: { calls: 3, seconds: 0, timed: 0 } });
  });

  it('turns two scrapes into calls per second and mean latency', () => {
    const before = toolTotals(scrape(10, 2), 0, serverOf);
    const after = toolTotals(scrape(30, 3), 4000, serverOf);
    const point = ratesBetween(before, after);
    expect(point.values.get('alpha')).toEqual({ perSecond: 5, latencyMs: 50 });
    expect(point.values.get('other')).toEqual({ perSecond: 0, latencyMs: undefined });
  });

  it('counts from zero after a counter went back (a restarted gateway)', () => {
    const point = ratesBetween(toolTotals(scrape(100, 9), 0, serverOf), toolTotals(scrape(4, 0.2), 2000, serverOf));
    expect(point.values.get('alpha')!.perSecond).toBe(2.5);
    expect(point.values.get('alpha')!.latencyMs).toBeCloseTo((0.7 / 5) * 1000);
  });

  it('reads escaped label values', () => {
    expect(parseLabels('tool_id="a\\"b",status="ok"')).toEqual({ tool_id: 'a"b', status: 'ok' });
  });
});

describe("the console's tool form", () => {
  const schema = {
    type: 'object',
    properties: {
      text: { type: 'string', description: 'What to say' },
      count: { type: 'integer', default: 2 },
      ratio: { type: 'number' },
      loud: { type: 'boolean' },
      mode: { type: 'string', enum: ['a', 'b'] },
      tags: { type: 'array', items: { type: 'string' } },
      maybe: { type: ['string', 'null'] },
    },
    required: ['text', 'count'],
  };

  it('picks an input per property, and JSON for anything else', () => {
    expect(fieldsOf(schema).map((f) => [f.name, f.kind, f.required])).toEqual([
      ['text', 'text', true],
      ['count', 'integer', true],
      ['ratio', 'number', false],
      ['loud', 'boolean', false],
      ['mode', 'enum', false],
      ['tags', 'json', false],
      ['maybe', 'text', false],
    ]);
    expect(initialValues(schema)).toEqual({ text: '', count: '2', ratio: '', loud: false, mode: '', tags: '', maybe: '' });
  });

  it('makes typed arguments, leaving out optional fields left empty', () => {
    const values = { ...initialValues(schema), text: 'hi', ratio: '0.5', loud: true, tags: '["x", "y"]' };
    expect(argumentsFrom(schema, values)).toEqual({ arguments: { text: 'hi', count: 2, ratio: 0.5, loud: true, tags: ['x', 'y'] } });
  });

  it('names each field that is missing or malformed', () => {
    const values = { ...initialValues(schema), count: '2.5', ratio: 'lots', tags: '[' };
    expect(argumentsFrom(schema, values)).toEqual({ problems: { text: 'required', count: 'expected an integer', ratio: 'expected a number', tags: 'expected JSON' } });
  });
});
