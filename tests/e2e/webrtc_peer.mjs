// Real browsers as the customers' WebRTC peers: Debian's chromium, headless, with a fake
// camera fed from a y4m clip of a person, driven by playwright-core (no browser download).
// Each page calls webrtc_agent WHIP-style (POST /calls with the bearer token), stays in the
// call, has the agent pause and resume the recording, samples getStats every second, ends
// the call (DELETE /calls/{id}) and the script prints one JSON object:
//
//   node webrtc_peer.mjs '<json options>'
//
// options: agent (URL), token, call_id (X-Call-Id; -<n> added per page), clip (y4m), seconds, pauses ([[at, until], ...] in s),
// calls (pages at once, default 1), flash (draw the camera onto a canvas and make it white
// for 200 ms every 2 s: the preview's latency is the time until it comes back; a flash of
// several frames survives the agent dropping frames it cannot process in time).
import { chromium } from 'playwright-core';

const options = JSON.parse(process.argv[2]);
const calls = options.calls ?? 1;
const pauses = options.pauses ?? [];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function request(method, path, body = '') {
  const response = await fetch(new URL(path, options.agent), {
    method,
    body: method === 'GET' || method === 'DELETE' ? undefined : body,
    headers: { Authorization: `Bearer ${options.token}` },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return { status: response.status, body: text };
}

// Runs in the page: connects, returns the call's Location.
async function connect({ token, flash, callId }) {
  const camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  let video = camera.getVideoTracks()[0];
  window.flashes = [];
  if (flash) {
    // The camera drawn on a canvas; every 2 s white for 200 ms (6 frames), its start noted.
    // One white frame was lost whenever the agent dropped it: under a loaded CI machine
    // (6 of 30 fps processed) only 3 of 10 came back, which measured the drop lottery, not
    // the latency.
    const element = document.createElement('video');
    element.srcObject = new MediaStream([video]);
    element.muted = true;
    await element.play();
    const canvas = document.createElement('canvas');
    const settings = video.getSettings();
    canvas.width = settings.width;
    canvas.height = settings.height;
    const context = canvas.getContext('2d');
    let last = 0;
    const draw = () => {
      const now = performance.now();
      if (now - last >= 2000) {
        last = now;
        window.flashes.push(now);
      }
      if (now - last < 200) {
        context.fillStyle = 'white';
        context.fillRect(0, 0, canvas.width, canvas.height);
      } else {
        context.drawImage(element, 0, 0, canvas.width, canvas.height);
      }
    };
    setInterval(draw, 1000 / 30);
    video = canvas.captureStream(30).getVideoTracks()[0];
  }
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  window.pc = pc;
  for (const track of [video, ...camera.getAudioTracks()]) {
    const transceiver = pc.addTransceiver(track, {
      direction: track.kind === 'video' ? 'sendrecv' : 'sendonly',
    });
    if (track.kind === 'video') {
      const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
      const vp8 = codecs.filter((codec) => codec.mimeType === 'video/VP8');
      transceiver.setCodecPreferences([...vp8, ...codecs.filter((codec) => !vp8.includes(codec))]);
    }
  }
  // The preview coming back: every frame's brightness, to find the flashes.
  window.received = [];
  pc.addEventListener('track', (event) => {
    if (event.track.kind !== 'video') return;
    const element = document.createElement('video');
    element.srcObject = new MediaStream([event.track]);
    element.muted = true;
    element.play();
    const canvas = document.createElement('canvas');
    canvas.width = 32;
    canvas.height = 18;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    const frame = (now) => {
      context.drawImage(element, 0, 0, 32, 18);
      const pixels = context.getImageData(0, 0, 32, 18).data;
      let sum = 0;
      for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
      window.received.push([now, sum / (pixels.length / 4) / 3]);
      element.requestVideoFrameCallback(frame);
    };
    element.requestVideoFrameCallback(frame);
  });
  await pc.setLocalDescription(await pc.createOffer());
  // Non-trickle (WHIP without PATCH): send the offer with every candidate.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
    setTimeout(resolve, 5000);
  });
  const response = await fetch('/calls', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/sdp',
      Authorization: `Bearer ${token}`,
      ...(callId ? { 'X-Call-Id': callId } : {}),
    },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) throw new Error(`WHIP: ${response.status} ${await response.text()}`);
  const answer = await response.text();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return { location: response.headers.get('Location'), answer };
}

// Runs in the page: what getStats says now.
async function sample() {
  const stats = await window.pc.getStats();
  const out = {};
  stats.forEach((report) => {
    if (report.type === 'outbound-rtp' && report.kind === 'video') {
      out.sent = {
        width: report.frameWidth,
        height: report.frameHeight,
        fps: report.framesPerSecond,
        limitation: report.qualityLimitationReason,
        bytes: report.bytesSent,
      };
    }
    if (report.type === 'inbound-rtp' && report.kind === 'video') {
      out.preview = {
        width: report.frameWidth,
        height: report.frameHeight,
        fps: report.framesPerSecond,
        frames_decoded: report.framesDecoded,
        frames_dropped: report.framesDropped,
        jitter_buffer_ms: report.jitterBufferEmittedCount
          ? (1000 * report.jitterBufferDelay) / report.jitterBufferEmittedCount
          : null,
      };
    }
    if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded') {
      out.bandwidth_estimate_bps = report.availableOutgoingBitrate;
      out.rtt_ms = report.currentRoundTripTime * 1000;
    }
  });
  return out;
}

// Flash latencies: for each flash's start, the first bright preview frame after it.
function flashLatencies(flashes, received) {
  const latencies = [];
  for (const sent of flashes) {
    const back = received.find(([time, luma], index) => {
      const before = index > 0 ? received[index - 1][1] : 0;
      return time > sent && luma > 180 && before <= 180;
    });
    if (back && back[0] - sent < 2000) latencies.push(back[0] - sent);
  }
  return latencies;
}

async function oneCall(browser, index) {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[page ${index}] ${message.text()}`));
  // http://127.0.0.1 is a secure context: getUserMedia and WebRTC work there.
  await page.goto(options.agent);
  const callId = options.call_id && (calls > 1 ? `${options.call_id}-${index}` : options.call_id);
  const { location, answer } = await page.evaluate(connect, { token: options.token, flash: !!options.flash, callId });
  const connectedAt = Date.now();
  await page.waitForFunction(() => window.pc.connectionState === 'connected', null, { timeout: 20000 });
  const result = { location, answer, connect_ms: Date.now() - connectedAt, samples: [], acks: [] };
  const start = Date.now();
  const at = (s) => sleep(Math.max(0, start + s * 1000 - Date.now()));
  const events = [];
  for (const [from, until] of pauses) {
    events.push([from, 'pause', 'customer reads card number']);
    events.push([until, 'resume', 'card number done']);
  }
  events.sort((a, b) => a[0] - b[0]);
  // Its failure is reported with the call's, never as an unhandled rejection that would hide
  // the first error (the browser is closed once any call fails).
  const sampler = (async () => {
    for (let s = 1; s <= Number(options.seconds); s += 1) {
      await at(s);
      result.samples.push({ t: s, ...(await page.evaluate(sample)) });
    }
  })();
  sampler.catch(() => {});
  for (const [when, action, reason] of events) {
    await at(when);
    const sent = Date.now();
    const ack = await request('POST', `${location}/${action}`, reason);
    let body;
    try {
      body = JSON.parse(ack.body);
    } catch {
      throw new Error(`call ${index}: ${action} answered ${ack.status} ${ack.body}`);
    }
    result.acks.push({ action, at_s: when, status: ack.status, answer_ms: Date.now() - sent, ...body });
  }
  await sampler;
  const { flashes, received } = await page.evaluate(() => ({ flashes: window.flashes, received: window.received }));
  if (options.flash) result.flash_latency_ms = flashLatencies(flashes, received);
  // The newest sample that has the preview's stats (Chrome can leave the inbound report out
  // of one getStats on a starved machine; its counters are cumulative).
  result.preview = result.samples.findLast((s) => s.preview)?.preview ?? null;
  const ended = await request('DELETE', location);
  result.ended = JSON.parse(ended.body);
  await page.close();
  return result;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    // Pages in the background keep their timers and rendering going (ten calls at once).
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
    `--use-file-for-fake-video-capture=${options.clip}`,
  ],
});
let results;
try {
  results = await Promise.all(
    Array.from({ length: calls }, (_, index) =>
      oneCall(browser, index).catch((error) => {
        error.message = `call ${index}: ${error.message}`;
        throw error;
      }),
    ),
  );
} finally {
  await browser.close();
}
console.log(JSON.stringify({ calls: results }));
