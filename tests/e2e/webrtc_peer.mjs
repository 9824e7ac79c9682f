// A real browser as the customer's WebRTC peer: Debian's chromium, headless, with a fake
// camera fed from a y4m clip of a person, driven by playwright-core (no browser download).
// It connects to webrtc_agent WHIP-style, stays in the call, has the agent pause and resume
// the recording once, checks the processed video came back, ends the call and prints JSON:
//
//   node webrtc_peer.mjs <agent url> <clip.y4m> <seconds> <pause at s> <resume at s>
import { chromium } from 'playwright-core';

const [agent, clip, seconds, pauseAt, resumeAt] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path, body = '') {
  const response = await fetch(new URL(path, agent), { method: 'POST', body });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
  return text;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${clip}`,
  ],
});
const result = {};
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[page] ${message.text()}`));
  // http://127.0.0.1 is a secure context: getUserMedia and WebRTC work there.
  await page.goto(agent);
  await page.evaluate(async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    window.pc = pc;
    for (const track of stream.getTracks()) {
      const transceiver = pc.addTransceiver(track, {
        direction: track.kind === 'video' ? 'sendrecv' : 'sendonly',
      });
      if (track.kind === 'video') {
        const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
        const vp8 = codecs.filter((codec) => codec.mimeType === 'video/VP8');
        transceiver.setCodecPreferences([...vp8, ...codecs.filter((codec) => !vp8.includes(codec))]);
      }
    }
    await pc.setLocalDescription(await pc.createOffer());
    // Non-trickle (WHIP without PATCH): send the offer with every candidate.
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') resolve();
      });
      setTimeout(resolve, 5000);
    });
    const response = await fetch('/whip', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(`WHIP: ${response.status} ${await response.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  });
  const connectedAt = Date.now();
  await page.waitForFunction(() => window.pc.connectionState === 'connected', null, { timeout: 20000 });
  result.connect_ms = Date.now() - connectedAt;

  const start = Date.now();
  const at = async (s) => sleep(Math.max(0, start + s * 1000 - Date.now()));
  await at(Number(pauseAt));
  await post('/pause', 'customer reads card number');
  await at(Number(resumeAt));
  await post('/resume', 'card number done');
  await at(Number(seconds));
  // What the agent sees: our own video, processed, coming back.
  result.preview = await page.evaluate(async () => {
    const stats = await window.pc.getStats();
    let preview = null;
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') {
        preview = {
          frames_decoded: report.framesDecoded,
          width: report.frameWidth,
          height: report.frameHeight,
        };
      }
    });
    return preview;
  });
  result.manifest = JSON.parse(await post('/stop'));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
