// Derives int8 variants of the Moonshine exports (install time, from the sha-checked files; the
// results are checked by sha256 in turn). Two exact-or-bounded rewrites:
//   1. Signed weights. The exports quantize every weight to uint8 with a zero point. ORT's
//      uint8 x uint8 integer GEMM is its slow path; uint8 activations x int8 weights run on
//      VNNI's vpdpbusd. Storing w - 128 with zero point z - 128 leaves every product
//      (w - z) unchanged, so on a CPU with VNNI the outputs are bit-identical (without VNNI,
//      ORT's int8 kernel may saturate: the server loads these files only where VNNI exists).
//   2. An int8 output projection (decoder). The logits come from the uint8 token embedding,
//      dequantized to fp32 and multiplied in fp32: 37.7 MB of floats read per decoder step
//      (tiny), its largest single cost. It gets the form every other MatMul of the export
//      has: DynamicQuantizeLinear of the hidden state, MatMulInteger on the embedding the
//      file holds, one rescale. Logits change by quantization noise; argmax rarely.
import { decode, encode, field, text, withBody } from './onnx-wire.mjs';

// ONNX field numbers (onnx.proto3).
const MODEL = { graph: 7 };
const GRAPH = { node: 1, initializer: 5, valueInfo: 13 };
const NODE = { input: 1, output: 2, name: 3, op: 4, attribute: 5 };
const ATTR = { name: 1, i: 3, g: 6, type: 20 };
const TENSOR = { dataType: 2, int32Data: 5, name: 8, rawData: 9 };
const ATTR_INT = 2, FLOAT = 1, UINT8 = 2n, INT8 = 3n;

const PROJECTION = '/proj_out/MatMul';

function nodeOf(f) {
  const n = { input: [], output: [], name: '', op: '', graphs: [] };
  for (const x of decode(f.body)) {
    if (x.number === NODE.input) n.input.push(text(x));
    else if (x.number === NODE.output) n.output.push(text(x));
    else if (x.number === NODE.name) n.name = text(x);
    else if (x.number === NODE.op) n.op = text(x);
    else if (x.number === NODE.attribute) for (const a of decode(x.body)) if (a.number === ATTR.g) n.graphs.push(a.body);
  }
  return n;
}

function makeNode(op, name, input, output, attributes = []) {
  return { number: GRAPH.node, wire: 2, body: encode([
    ...input.map((s) => ({ raw: field(NODE.input, s) })), ...output.map((s) => ({ raw: field(NODE.output, s) })),
    { raw: field(NODE.name, name) }, { raw: field(NODE.op, op) }, ...attributes.map((a) => ({ raw: field(NODE.attribute, a) })),
  ]) };
}

/** Every node of a graph and of its subgraphs, flattened. */
function allNodes(graph, out = []) {
  for (const f of decode(graph)) {
    if (f.number !== GRAPH.node) continue;
    const n = nodeOf(f);
    out.push(n);
    for (const g of n.graphs) allNodes(g, out);
  }
  return out;
}

/** Maps over the body of each node's subgraphs (an If's branches), depth one. */
function mapSubgraphs(graph, fn) {
  return encode(decode(graph).map((g) => {
    if (g.number !== GRAPH.node || nodeOf(g).graphs.length === 0) return g;
    return withBody(g, encode(decode(g.body).map((a) => {
      if (a.number !== NODE.attribute) return a;
      return withBody(a, encode(decode(a.body).map((x) => (x.number === ATTR.g ? withBody(x, fn(x.body)) : x))));
    })));
  }));
}

// One branch: the fp32 MatMul on the dequantized embedding becomes an integer MatMul on the
// embedding itself. Returns null when the branch has no such projection.
function int8Projection(branch) {
  const fields = decode(branch);
  const nodes = fields.filter((f) => f.number === GRAPH.node).map((f) => ({ f, n: nodeOf(f) }));
  const mm = nodes.find(({ n }) => n.name === PROJECTION && n.op === 'MatMul');
  if (!mm) return null;
  const dq = nodes.find(({ n }) => n.op === 'DequantizeLinear' && n.output[0] === mm.n.input[1]);
  if (!dq || dq.n.input.length !== 3) throw new Error('the output projection does not read a dequantized weight');
  if (nodes.some(({ n }) => n !== mm.n && n.input.includes(dq.n.output[0]))) throw new Error('the dequantized projection weight has other consumers');
  const [weight, scale, zeroPoint] = dq.n.input, [hidden] = mm.n.input, [logits] = mm.n.output;
  const name = (s) => `${PROJECTION}_int8/${s}`;
  const toFloat = encode([{ raw: field(ATTR.name, 'to') }, { raw: field(ATTR.i, FLOAT) }, { raw: field(ATTR.type, ATTR_INT) }]);
  const replacement = [
    makeNode('DynamicQuantizeLinear', name('quantize'), [hidden], [name('x'), name('x_scale'), name('x_zero_point')]),
    makeNode('MatMulInteger', name('matmul'), [name('x'), weight, name('x_zero_point'), zeroPoint], [name('int32')]),
    makeNode('Mul', name('scales'), [name('x_scale'), scale], [name('scale')]),
    makeNode('Cast', name('cast'), [name('int32')], [name('float')], [toFloat]),
    makeNode('Mul', name('rescale'), [name('float'), name('scale')], [logits]),
  ];
  return encode(fields.flatMap((f) => (f === dq.f ? [] : f === mm.f ? replacement : [f])));
}

// The uint8 weights that may be stored signed: each is read only as the quantized operand of a
// DequantizeLinear or MatMulInteger (directly or through Gather/Transpose) beside one zero-point
// initializer that is read nowhere else. Returns the names of weights and zero points, and of
// the values computed from them (whose declared types change with them).
function signableWeights(nodes, initializers) {
  const producers = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n])));
  const source = (value) => {
    for (let v = value; ;) {
      if (initializers.has(v)) return v;
      const p = producers.get(v);
      if (!p || !['Gather', 'Transpose'].includes(p.op)) return null;
      v = p.input[0];
    }
  };
  const pairs = new Map(), rejected = new Set();
  const uses = (v) => nodes.flatMap((n) => n.input.map((x, slot) => ({ n, slot })).filter(({ n: m, slot }) => m.input[slot] === v));
  for (const n of nodes) {
    const at = n.op === 'MatMulInteger' ? [1, 3] : n.op === 'DequantizeLinear' ? [0, 2] : null;
    if (!at || !n.input[at[1]]) continue;
    const weight = source(n.input[at[0]]), zero = n.input[at[1]];
    if (!weight || !initializers.has(zero)) continue;
    if (pairs.has(weight) && pairs.get(weight) !== zero) rejected.add(weight);
    pairs.set(weight, zero);
  }
  const names = new Set(), values = new Set();
  for (const [weight, zero] of pairs) {
    if (rejected.has(weight) || initializers.get(weight) !== UINT8 || initializers.get(zero) !== UINT8) continue;
    const derived = new Set([weight]);
    let ok = true;
    for (const v of derived) {
      for (const { n, slot } of uses(v)) {
        if (slot === 0 && ['Gather', 'Transpose'].includes(n.op)) derived.add(n.output[0]);
        else if (!(n.op === 'MatMulInteger' && slot === 1 && n.input[3] === zero) && !(n.op === 'DequantizeLinear' && slot === 0 && n.input[2] === zero)) ok = false;
      }
    }
    for (const { n, slot } of uses(zero)) {
      if (!(n.op === 'MatMulInteger' && slot === 3 && derived.has(n.input[1])) && !(n.op === 'DequantizeLinear' && slot === 2 && derived.has(n.input[0]))) ok = false;
    }
    if (!ok) continue;
    names.add(weight);
    names.add(zero);
    for (const v of derived) if (v !== weight) values.add(v);
  }
  return { names, values };
}

function packedInt32(values) {
  return Uint8Array.from(values.flatMap((v) => {
    const out = [];
    let u = BigInt.asUintN(64, BigInt(v));
    do { const low = Number(u & 0x7fn); u >>= 7n; out.push(u ? low | 0x80 : low); } while (u);
    return out;
  }));
}
function unpackInt32(body) {
  const out = [];
  for (let p = 0; p < body.length; ) {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) { const b = body[p++]; v |= BigInt(b & 0x7f) << shift; if (!(b & 0x80)) break; }
    out.push(Number(BigInt.asIntN(32, v)));
  }
  return out;
}

// A uint8 tensor as int8 holding value - 128.
function signed(tensor) {
  return encode(decode(tensor).map((x) => {
    if (x.number === TENSOR.dataType) return { number: x.number, value: INT8 };
    if (x.number === TENSOR.rawData) return withBody(x, x.body.map((b) => b ^ 0x80));
    if (x.number === TENSOR.int32Data) return withBody(x, packedInt32(unpackInt32(x.body).map((v) => v - 128)));
    return x;
  }));
}

/**
 * The derived bytes of a Moonshine encoder or merged decoder, and what was rewritten:
 * `{ bytes, signed (weights stored signed), projections (If branches given int8 logits) }`.
 */
export function deriveInt8(model) {
  let projections = 0, signedWeights = 0;
  const bytes = encode(decode(model).map((m) => {
    if (m.number !== MODEL.graph) return m;
    const graph = mapSubgraphs(m.body, (branch) => {
      const rewritten = int8Projection(branch);
      if (rewritten === null) return branch;
      projections++;
      return rewritten;
    });
    const initializers = new Map();
    for (const f of decode(graph)) {
      if (f.number !== GRAPH.initializer) continue;
      const t = decode(f.body);
      initializers.set(text(t.find((x) => x.number === TENSOR.name)), t.find((x) => x.number === TENSOR.dataType)?.value);
    }
    const { names, values } = signableWeights(allNodes(graph), initializers);
    // The declared types of values computed from signed weights are dropped (ORT infers them).
    const retyped = (g) => encode(decode(g).filter((f) => f.number !== GRAPH.valueInfo || !values.has(text(decode(f.body).find((x) => x.number === 1)))));
    return withBody(m, encode(decode(mapSubgraphs(retyped(graph), retyped)).map((f) => {
      if (f.number !== GRAPH.initializer || !names.has(text(decode(f.body).find((x) => x.number === TENSOR.name)))) return f;
      signedWeights++;
      return withBody(f, signed(f.body));
    })));
  }));
  return { bytes, signed: signedWeights / 2, projections };
}
