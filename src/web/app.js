// The live page: captures the microphone with an AudioWorklet at the AudioContext's own rate,
// streams it as f32 little-endian mono frames to /api/v1/segmented or /api/v1/simple, and shows
// what the server sends back (README "Protocol"): voice activity, interim and final segments,
// errors. Nothing is shown that the server did not send, except the page's own measurements
// (level, latencies) and client-side failures (microphone, connection), which are labelled so.
//
// Latency, per utterance, measured with performance.now() on this page:
// - every frame sent is recorded with the time it arrived from the capture worklet (its last
//   sample's capture time, as seen by the page) and the running sample count, so the wall time
//   at which the audio at any stream time T was captured and sent can be looked up;
// - time to first result = arrival of the utterance's first segment (interim or final) minus
//   the capture time of its speech onset (the `active` time inside the segment; the segment's
//   start_time on the simple route, which has no voice activity events);
// - final lag = arrival of the final minus the capture time of the audio at its end_time.
//
// Authentication: when the server has AUTH_TOKEN set, the WebSocket upgrade answers HTTP 401,
// which a browser only reports as a connection that failed before opening (no status code).
// The page does not probe /api/v1/health first (it is open by default, so it says nothing about
// the WebSocket routes); instead, a connection that fails before `open` is reported as "refused
// (wrong or missing token?)" and reveals the token field. The token is kept in sessionStorage
// (this tab only) once a connection with it has opened, and sent as the subprotocol
// `bearer.<token>` (see protocolsFor) because browsers cannot set an Authorization header on a
// WebSocket.

const FRAME_SECONDS = 0.02;
const TOKEN_KEY = 'speech-server.token';
const STOP_CLOSE_TIMEOUT_MS = 30_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('controls'),
  toggle: $('toggle'),
  routes: [...document.querySelectorAll('input[name="route"]')],
  interim: $('interim'),
  tokenRow: $('token-row'),
  token: $('token'),
  level: $('level'),
  vad: $('vad'),
  vadText: $('vad-text'),
  status: $('status'),
  transcript: $('transcript'),
  messages: $('messages'),
};

let session;
let sessions = 0;

// ---- token -------------------------------------------------------------------------------

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return undefined; // storage disabled: the token is simply not remembered
  }
}

const savedToken = storage()?.getItem(TOKEN_KEY);
if (savedToken) {
  ui.token.value = savedToken;
  ui.tokenRow.hidden = false;
}

// ---- small UI helpers --------------------------------------------------------------------

function setState(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  const live = state === 'connecting' || state === 'streaming' || state === 'stopping';
  ui.toggle.dataset.action = live ? 'stop' : 'start';
  ui.toggle.textContent = state === 'stopping' ? 'Stopping…' : live ? 'Stop' : 'Start';
  ui.toggle.disabled = state === 'stopping';
  for (const radio of ui.routes) radio.disabled = live;
  ui.interim.disabled = live || selectedRoute() === 'simple';
  ui.token.disabled = live;
}

function selectedRoute() {
  return ui.routes.find((r) => r.checked)?.value ?? 'segmented';
}

/** A line in the message log; `source` is 'server' (an error event) or 'client'. */
function message(source, code, text) {
  const li = document.createElement('li');
  li.className = `msg ${source}`;
  li.dataset.source = source;
  li.dataset.code = code;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const strong = document.createElement('strong');
  strong.textContent = code;
  li.append(time, ' ', strong, ` ${text}`);
  ui.messages.append(li);
}

function setVad(state, text) {
  ui.vad.dataset.vad = state;
  ui.vadText.textContent = text;
}

function setLevel(peak) {
  // -60 dBFS .. 0 dBFS onto 0 .. 1.
  const db = peak > 0 ? 20 * Math.log10(peak) : -Infinity;
  const value = Math.min(1, Math.max(0, (db + 60) / 60));
  ui.level.value = value;
  ui.level.textContent = Number.isFinite(db) ? `${db.toFixed(0)} dBFS` : 'silence';
}

const seconds = (t) => (typeof t === 'number' ? t.toFixed(2) : '?');
const ms = (t) => `${Math.round(t)} ms`;

function closeMeaning(code) {
  return {
    1000: 'normal closure',
    1001: 'the server is going away (shutting down)',
    1006: 'abnormal closure: no close frame (network failure, refused or crashed server)',
    1008: 'policy violation (e.g. BACKLOG)',
    1009: 'message too large',
    1011: 'internal server error',
  }[code] ?? 'see the error messages above, if any';
}

// ---- session -----------------------------------------------------------------------------

// The token travels as the subprotocol `bearer.<token>` beside `speech-server` (the server
// echoes only the latter), so it stays out of URLs and proxy access logs. Subprotocols are HTTP
// tokens: a token with other characters falls back to ?token=.
function protocolsFor(token) {
  return token && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token) ? ['speech-server', `bearer.${token}`] : undefined;
}

function webSocketUrl(route, token) {
  const url = new URL(`/api/v1/${route}`, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) url.searchParams.set('token', token);
  return url.href;
}

function start() {
  const route = selectedRoute();
  const token = ui.token.value.trim();
  const s = {
    id: ++sessions,
    route,
    interim: route === 'segmented' && ui.interim.checked,
    token,
    // Created inside the click handler, so the autoplay policy lets it run.
    ctx: new AudioContext(),
    ws: undefined,
    stream: undefined,
    source: undefined,
    node: undefined,
    opened: false,
    sending: false,
    stopping: false,
    closed: false,
    rate: undefined, // the AudioContext's rate, declared in the start message
    sentSamples: 0,
    frames: [], // { end: samples sent after this frame, t: its capture time }
    actives: [], // { channel, time }
    utterances: new Map(),
    onFlushed: undefined,
    aborted: undefined, // why the page ended the session itself, if it did
  };
  session = s;
  setState('connecting', `connecting to /api/v1/${route}…`);
  setVad(route === 'segmented' ? 'silent' : 'none', route === 'segmented' ? 'no speech detected yet' : 'voice activity: not reported on the simple route');

  const protocols = protocolsFor(token);
  const ws = protocols ? new WebSocket(webSocketUrl(route, undefined), protocols) : new WebSocket(webSocketUrl(route, token));
  s.ws = ws;
  ws.onopen = () => {
    s.opened = true;
    if (token) storage()?.setItem(TOKEN_KEY, token);
    // Start the stream at once (the AudioContext's rate is known): the server closes a connection
    // that has no stream for START_TIMEOUT_SECONDS, and the microphone prompt may take longer.
    s.rate = s.ctx.sampleRate;
    ws.send(JSON.stringify({
      request: 'start',
      format: { channels: 1, sample_rate: s.rate, bit_depth: 32, is_float: true },
      interim_results: s.interim,
    }));
    startAudio(s).catch((err) => {
      message('client', 'AUDIO', `could not set up audio capture: ${err?.name ?? 'Error'}: ${err?.message ?? err}`);
      abort(s, 'audio capture failed');
    });
  };
  ws.onmessage = (event) => onServerMessage(s, event.data);
  ws.onclose = (event) => onClose(s, event);
}

async function startAudio(s) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    message('client', 'MICROPHONE', `microphone refused or unavailable (${err?.name ?? 'Error'}: ${err?.message ?? err})`);
    abort(s, 'microphone refused or unavailable');
    return;
  }
  s.stream = stream;
  if (s.stopping || s.closed) {
    teardownAudio(s);
    return;
  }
  for (const track of stream.getAudioTracks()) {
    track.onended = () => {
      if (s.stopping || s.closed) return;
      message('client', 'MICROPHONE', 'the microphone stopped delivering audio (device removed or permission revoked)');
      void stop(s);
    };
  }
  await s.ctx.audioWorklet.addModule('capture-worklet.js');
  if (s.stopping || s.closed) {
    teardownAudio(s);
    return;
  }
  const rate = s.rate;
  s.source = s.ctx.createMediaStreamSource(stream);
  s.node = new AudioWorkletNode(s.ctx, 'capture', {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    channelCount: 1,
    channelCountMode: 'explicit',
    channelInterpretation: 'speakers',
    processorOptions: { frameSamples: Math.round(rate * FRAME_SECONDS) },
  });
  s.node.port.onmessage = (event) => onFrame(s, event.data);
  s.sending = true; // the start went out when the socket opened
  s.source.connect(s.node);
  await s.ctx.resume();
  sessionHeader(s);
  if (s.stopping || s.closed) return; // stopped while the context was starting
  setState('streaming', `streaming ${rate} Hz mono f32 to /api/v1/${s.route}${s.interim ? ' with interim results' : ''}`);
}

function onFrame(s, data) {
  if (data.flushed) {
    s.onFlushed?.();
    return;
  }
  const t = performance.now();
  setLevel(data.peak);
  if (!s.sending || s.ws.readyState !== WebSocket.OPEN) return;
  s.ws.send(LITTLE_ENDIAN ? data.samples : littleEndian(data.samples));
  s.sentSamples += data.samples.length;
  s.frames.push({ end: s.sentSamples, t });
}

function littleEndian(samples) {
  const out = new DataView(new ArrayBuffer(samples.length * 4));
  samples.forEach((v, i) => out.setFloat32(i * 4, v, true));
  return out.buffer;
}

/** performance.now() at which the audio at stream time `time` (seconds) was captured and sent. */
function captureTime(s, time) {
  if (!s.rate || typeof time !== 'number') return undefined;
  const sample = Math.round(time * s.rate);
  let lo = 0;
  let hi = s.frames.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s.frames[mid].end < sample) lo = mid + 1;
    else hi = mid;
  }
  return s.frames[lo]?.t;
}

async function stop(s) {
  if (s.stopping || s.closed) return;
  s.stopping = true;
  setState('stopping', 'stopping — waiting for the last results…');
  if (s.node && s.sending) {
    // Send the partial frame still in the worklet before the stop (bounded wait).
    await new Promise((resolve) => {
      s.onFlushed = resolve;
      s.node.port.postMessage('flush');
      setTimeout(resolve, 250);
    });
  }
  teardownAudio(s);
  if (s.ws.readyState === WebSocket.OPEN) {
    s.ws.send(JSON.stringify({ request: 'stop', disconnect: true }));
    setTimeout(() => {
      if (s.closed) return;
      message('client', 'CONNECTION', `the server did not close the connection within ${STOP_CLOSE_TIMEOUT_MS / 1000} s of the stop; closing it`);
      s.ws.close();
    }, STOP_CLOSE_TIMEOUT_MS);
  } else {
    s.ws.close();
  }
}

/** Ends the session from the client side after a local failure (already reported). */
function abort(s, why) {
  s.stopping = true;
  s.aborted = why;
  teardownAudio(s);
  if (s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify({ request: 'stop', disconnect: true }));
  else s.ws.close();
}

function teardownAudio(s) {
  s.sending = false;
  s.source?.disconnect();
  if (s.node) s.node.port.onmessage = null;
  for (const track of s.stream?.getTracks() ?? []) track.stop();
  if (s.ctx.state !== 'closed') s.ctx.close().catch(() => {});
  setLevel(0);
}

function onClose(s, event) {
  s.closed = true;
  teardownAudio(s);
  if (!s.opened) {
    if (s.stopping) {
      setState('closed', 'cancelled before the connection opened');
    } else {
      // A 401 (AUTH_TOKEN) looks like this to a browser; so would a 503 (busy or loading).
      message('client', 'CONNECTION', `connection refused (wrong or missing token?) — the WebSocket to /api/v1/${s.route} failed before it opened (code ${event.code}); the server may also be unreachable, busy or still loading`);
      ui.tokenRow.hidden = false;
      setState('closed', 'connection refused');
      ui.token.focus();
    }
  } else if (event.code === 1000 && s.stopping) {
    setState('closed', `${s.aborted ?? 'stopped'}; connection closed normally (1000)`);
  } else {
    const reason = event.reason ? ` — “${event.reason}”` : '';
    message('client', 'CONNECTION', `connection closed${s.stopping ? '' : ' unexpectedly'}: code ${event.code} (${closeMeaning(event.code)})${reason}`);
    setState('closed', `connection closed (${event.code})`);
  }
  if (ui.vad.dataset.vad === 'speaking') setVad('silent', 'connection closed while speaking (no inactive received)');
  else if (ui.vadText.textContent === 'no speech detected yet') ui.vadText.textContent = 'no speech detected';
  if (session === s) session = undefined;
}

// ---- server events -----------------------------------------------------------------------

function onServerMessage(s, data) {
  if (typeof data !== 'string') {
    message('client', 'PROTOCOL', 'the server sent a binary frame, which the protocol does not define');
    return;
  }
  const arrival = performance.now();
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    message('client', 'PROTOCOL', `the server sent text that is not JSON: ${data.slice(0, 200)}`);
    return;
  }
  switch (event.type) {
    case 'active':
      s.actives.push({ channel: event.channel, time: event.time });
      ui.vad.dataset.activeCount = String(Number(ui.vad.dataset.activeCount) + 1);
      setVad('speaking', `speaking (since ${seconds(event.time)} s)`);
      break;
    case 'inactive':
      ui.vad.dataset.inactiveCount = String(Number(ui.vad.dataset.inactiveCount) + 1);
      setVad('silent', `silent (since ${seconds(event.time)} s)`);
      break;
    case 'segment':
      onSegment(s, event, arrival);
      break;
    case 'error':
      message('server', String(event.code), `(channel ${event.channel}): ${event.message}`);
      break;
    default:
      message('client', 'PROTOCOL', `unknown event from the server: ${data.slice(0, 200)}`);
  }
}

function sessionHeader(s) {
  const li = document.createElement('li');
  li.className = 'session';
  li.textContent = `Session ${s.id} · /api/v1/${s.route} · ${s.rate} Hz${s.interim ? ' · interim results' : ''}`;
  ui.transcript.append(li);
}

function onSegment(s, event, arrival) {
  // The simple route's segments are its results; on the segmented route only is_final ones are.
  const final = s.route === 'simple' || event.is_final === true;
  // Interims and the final of one utterance share its start_time (and channel).
  const key = `${event.channel}:${event.start_time}`;
  let u = s.utterances.get(key);
  if (!u) {
    const onset = s.actives.find((a) => a.channel === event.channel && a.time >= event.start_time && a.time <= event.end_time)?.time ?? event.start_time;
    const captured = captureTime(s, onset);
    u = { row: utteranceRow(event.channel), ttfr: captured === undefined ? undefined : arrival - captured };
    s.utterances.set(key, u);
    ui.transcript.append(u.row.li);
  }
  const { li, times, ttfr, lag, text } = u.row;
  li.dataset.final = String(final);
  times.textContent = `${seconds(event.start_time)}–${seconds(event.end_time)} s`;
  if (u.ttfr !== undefined) {
    ttfr.dataset.ms = String(Math.round(u.ttfr));
    ttfr.textContent = `first result ${ms(u.ttfr)}`;
  }
  if (final) {
    const captured = captureTime(s, event.end_time);
    if (captured !== undefined) {
      lag.dataset.ms = String(Math.round(arrival - captured));
      lag.textContent = `final lag ${ms(arrival - captured)}`;
    } else {
      lag.textContent = 'final lag ?';
    }
  } else {
    li.dataset.interims = String(Number(li.dataset.interims ?? 0) + 1);
    lag.textContent = 'interim';
  }
  text.className = `text ${final ? 'final' : 'interim'}`;
  if (typeof event.text === 'string') {
    text.textContent = event.text === '' ? '(empty text)' : event.text;
  } else if (typeof event.count === 'number') {
    text.textContent = `stub model: ${event.count} samples (${seconds(event.count / 16000)} s at 16 kHz)`;
  } else {
    text.textContent = `(segment without text) ${JSON.stringify(event)}`;
  }
}

function utteranceRow(channel) {
  const li = document.createElement('li');
  li.className = 'utterance';
  li.dataset.channel = String(channel);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const times = document.createElement('span');
  times.className = 'times';
  const ttfr = document.createElement('span');
  ttfr.className = 'ttfr';
  const lag = document.createElement('span');
  lag.className = 'lag';
  ttfr.title = 'time from the capture of the speech onset to the first result for this utterance';
  lag.title = 'time from the capture of the audio at the end of this utterance to the arrival of its final';
  meta.append(times, ttfr, lag);
  const text = document.createElement('p');
  li.append(meta, text);
  return { li, times, ttfr, lag, text };
}

// ---- wiring ------------------------------------------------------------------------------

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (session && !session.closed) {
    void stop(session);
  } else {
    start();
  }
});
for (const radio of ui.routes) radio.addEventListener('change', () => setState(ui.status.dataset.state, ui.status.textContent));
window.addEventListener('pagehide', () => {
  if (session && !session.closed) session.ws.close();
});
setState('idle', 'idle — press Start and allow the microphone');
