//! What an RTP media port of a gateway accepts, decided per packet without GStreamer:
//!
//! - valid RTP (version 2, consistent CSRC/extension/padding lengths; parsed by `rtp-types`)
//!   of one of the call's payload types;
//! - from the call's peer: an address fixed by signalling (`expected`), or else the first
//!   valid (address, SSRC) seen — symmetric-RTP latching, as SIP media servers do behind NAT.
//!   The first packet latches (its keyframe must not be lost). Another source is refused
//!   while the latched one is live; after `relatch_after` of silence a new source takes over
//!   once learnt from LEARN_PACKETS consecutive packets in sequence (as Asterisk's strictrtp
//!   does: stray or random packets never take a call over) (a re-INVITE moved the media, the peer's NAT binding changed), and that switch is
//!   reported. Latching cannot tell a peer from an attacker who sends well-formed RTP first:
//!   give `expected` from the SDP, and use SRTP, where that matters;
//! - for H.264 (RFC 6184, packetization-mode 1), only payloads a depayloader handles and that
//!   are well formed: single NAL units, STAP-A with consistent lengths, FU-A with a header.
//!   Other types (STAP-B, MTAP, FU-B, reserved) are refused: a few thousand blind 33-byte
//!   MTAP packets used to make the depayloader fail and end the call.
//!
//! Every refusal is counted by reason, never fatal; only accepted packets count as media (the
//! call's inactivity timeout cannot be kept alive by garbage).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Why a packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Not parseable as RTP.
    Malformed,
    /// A payload type the call did not negotiate.
    PayloadType,
    /// Not from the call's peer (another address, or another SSRC from it).
    Source,
    /// A payload the codec's depayloader cannot take.
    Payload,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Malformed,
        Refusal::PayloadType,
        Refusal::Source,
        Refusal::Payload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::PayloadType => "payload_type",
            Refusal::Source => "source",
            Refusal::Payload => "payload",
        }
    }
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Accepted from a new source that took over (the first one, or after silence).
    Latched {
        previous: Option<(SocketAddr, u32)>,
    },
    Refuse(Refusal),
}

/// How the codec's payloads are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    /// Audio (PCMU, Opus, telephone events): any payload of 1 to `max` bytes.
    Audio {
        max: usize,
    },
}

/// The policy of one media port.
#[derive(Clone, Debug)]
pub struct Policy {
    pub payload_types: Vec<u8>,
    pub codec: Codec,
    /// The peer's address from signalling; port 0 accepts any port of that IP.
    pub expected: Option<SocketAddr>,
    pub relatch_after: Duration,
}

/// Counts of accepted and refused packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub latches: u64,
    pub refused: [u64; 4],
}

impl Counters {
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize]
    }

    pub fn total_refused(&self) -> u64 {
        self.refused.iter().sum()
    }
}

/// Consecutive in-sequence packets a new source sends before it takes over a silent one.
pub const LEARN_PACKETS: u32 = 4;

/// A source being learnt: its last sequence number and how many in a row it sent.
#[derive(Debug, Clone, Copy)]
struct Learning {
    source: (SocketAddr, u32),
    last_seq: u16,
    count: u32,
}

/// The per-port decision state.
#[derive(Debug)]
pub struct Guard {
    policy: Policy,
    latched: Option<(SocketAddr, u32)>,
    learning: Option<Learning>,
    last_accepted: Option<Instant>,
    counters: Counters,
}

impl Guard {
    pub fn new(policy: Policy) -> Guard {
        Guard {
            policy,
            latched: None,
            learning: None,
            last_accepted: None,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The source media is accepted from, once latched.
    pub fn latched(&self) -> Option<(SocketAddr, u32)> {
        self.latched
    }

    /// When the last packet was accepted.
    pub fn last_accepted(&self) -> Option<Instant> {
        self.last_accepted
    }

    /// Decides one datagram from `source` arriving at `now`.
    pub fn check(&mut self, packet: &[u8], source: SocketAddr, now: Instant) -> Verdict {
        let verdict = self.decide(packet, source, now);
        match verdict {
            Verdict::Refuse(reason) => self.counters.refused[reason as usize] += 1,
            Verdict::Latched { .. } => {
                self.counters.latches += 1;
                self.counters.accepted += 1;
                self.last_accepted = Some(now);
            }
            Verdict::Accept => {
                self.counters.accepted += 1;
                self.last_accepted = Some(now);
            }
        }
        verdict
    }

    fn decide(&mut self, packet: &[u8], source: SocketAddr, now: Instant) -> Verdict {
        let Ok(rtp) = rtp_types::RtpPacket::parse(packet) else {
            return Verdict::Refuse(Refusal::Malformed);
        };
        if !self.policy.payload_types.contains(&rtp.payload_type()) {
            return Verdict::Refuse(Refusal::PayloadType);
        }
        if let Some(expected) = self.policy.expected
            && (expected.ip() != source.ip()
                || (expected.port() != 0 && expected.port() != source.port()))
        {
            return Verdict::Refuse(Refusal::Source);
        }
        let payload_ok = match self.policy.codec {
            Codec::H264 => h264_payload_ok(rtp.payload()),
            Codec::Audio { max } => (1..=max).contains(&rtp.payload().len()),
        };
        if !payload_ok {
            return Verdict::Refuse(Refusal::Payload);
        }
        let candidate = (source, rtp.ssrc());
        if self.latched == Some(candidate) {
            return Verdict::Accept;
        }
        let latched_is_live = self.latched.is_some()
            && self.last_accepted.is_some_and(|last| {
                now.saturating_duration_since(last) < self.policy.relatch_after
            });
        if latched_is_live {
            return Verdict::Refuse(Refusal::Source);
        }
        if self.latched.is_none() {
            self.latched = Some(candidate);
            return Verdict::Latched { previous: None };
        }
        // Learning the new source: LEARN_PACKETS in sequence, each following the last.
        let seq = rtp.sequence_number();
        let learning = match self.learning {
            Some(learning)
                if learning.source == candidate && seq == learning.last_seq.wrapping_add(1) =>
            {
                Learning {
                    last_seq: seq,
                    count: learning.count + 1,
                    ..learning
                }
            }
            _ => Learning {
                source: candidate,
                last_seq: seq,
                count: 1,
            },
        };
        if learning.count < LEARN_PACKETS {
            self.learning = Some(learning);
            return Verdict::Refuse(Refusal::Source);
        }
        self.learning = None;
        let previous = self.latched.replace(candidate);
        Verdict::Latched { previous }
    }
}

/// Whether an H.264 RTP payload (RFC 6184, non-interleaved mode) is one a depayloader takes:
/// a single NAL unit (types 1-23), an STAP-A (24) whose units fill it exactly, or an FU-A (28)
/// with its FU header and a non-reserved inner type. The forbidden bit must be clear.
pub fn h264_payload_ok(payload: &[u8]) -> bool {
    let Some(&indicator) = payload.first() else {
        return false;
    };
    if indicator & 0x80 != 0 {
        return false;
    }
    match indicator & 0x1f {
        1..=23 => true,
        24 => {
            let mut rest = &payload[1..];
            if rest.is_empty() {
                return false;
            }
            while !rest.is_empty() {
                let Some((size, tail)) = rest.split_first_chunk::<2>() else {
                    return false;
                };
                let size = u16::from_be_bytes(*size) as usize;
                if size == 0 || size > tail.len() {
                    return false;
                }
                let nal_type = tail[0] & 0x1f;
                if tail[0] & 0x80 != 0 || !(1..=23).contains(&nal_type) {
                    return false;
                }
                rest = &tail[size..];
            }
            true
        }
        28 => {
            payload
                .get(1)
                .is_some_and(|header| (1..=23).contains(&(header & 0x1f)) && header & 0xc0 != 0xc0)
                && payload.len() > 2
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x80, pt, (seq >> 8) as u8, seq as u8, 0, 0, 0, 1];
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn video_guard(expected: Option<&str>) -> Guard {
        Guard::new(Policy {
            payload_types: vec![96],
            codec: Codec::H264,
            expected: expected.map(address),
            relatch_after: Duration::from_secs(2),
        })
    }

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00];

    /// Sends LEARN_PACKETS in sequence from `source`; the last one latches.
    fn learn(guard: &mut Guard, source: SocketAddr, ssrc: u32, now: Instant) -> Verdict {
        for seq in 1..LEARN_PACKETS as u16 {
            assert_eq!(
                guard.check(&rtp(96, ssrc, seq, IDR), source, now),
                Verdict::Refuse(Refusal::Source)
            );
        }
        guard.check(&rtp(96, ssrc, LEARN_PACKETS as u16, IDR), source, now)
    }

    #[test]
    fn latches_on_the_first_valid_source_and_refuses_others_while_it_is_live() {
        let mut guard = video_guard(None);
        let peer = address("10.0.0.2:4000");
        let other = address("10.0.0.9:4000");
        let t0 = Instant::now();
        assert_eq!(
            guard.check(&rtp(96, 7, 1, IDR), peer, t0),
            Verdict::Latched { previous: None }
        );
        assert_eq!(guard.check(&rtp(96, 7, 9, IDR), peer, t0), Verdict::Accept);
        // Another address, or another SSRC from the same address, in sequence or not.
        let later = t0 + Duration::from_millis(500);
        for seq in 1..10 {
            assert_eq!(
                guard.check(&rtp(96, 7, seq, IDR), other, later),
                Verdict::Refuse(Refusal::Source)
            );
        }
        assert_eq!(
            guard.check(&rtp(96, 8, 3, IDR), peer, later),
            Verdict::Refuse(Refusal::Source)
        );
        // After 2 s of silence of the latched source, a new one is learnt and takes over.
        let silent = t0 + Duration::from_secs(2);
        assert_eq!(
            learn(&mut guard, other, 9, silent),
            Verdict::Latched {
                previous: Some((peer, 7))
            }
        );
        assert_eq!(
            guard.check(&rtp(96, 7, 10, IDR), peer, silent),
            Verdict::Refuse(Refusal::Source)
        );
        let counters = guard.counters();
        assert_eq!((counters.accepted, counters.latches), (3, 2));
        assert!(counters.refused(Refusal::Source) >= 10 + LEARN_PACKETS as u64);
    }

    #[test]
    fn packets_out_of_sequence_never_take_a_silent_call_over() {
        let mut guard = video_guard(None);
        let peer = address("10.0.0.2:4000");
        let stranger = address("10.0.0.66:1234");
        let t0 = Instant::now();
        guard.check(&rtp(96, 7, 1, IDR), peer, t0);
        let now = t0 + Duration::from_secs(10);
        for seq in [5u16, 900, 17, 4000, 5, 6, 100, 101, 102, 7] {
            assert_eq!(
                guard.check(&rtp(96, 3, seq, IDR), stranger, now),
                Verdict::Refuse(Refusal::Source)
            );
        }
        assert_eq!(guard.latched(), Some((peer, 7)));
        assert_eq!(guard.last_accepted(), Some(t0));
    }

    #[test]
    fn garbage_never_latches_nor_counts_as_media() {
        let mut guard = video_guard(None);
        let attacker = address("10.0.0.66:1234");
        let now = Instant::now();
        // The probe that ended calls: 33-byte PT 96 packets with an MTAP16 NAL.
        let mut mtap = vec![26u8];
        mtap.resize(21, 0xab);
        for (packet, reason) in [
            (rtp(96, 1, 1, &mtap), Refusal::Payload),
            (rtp(97, 1, 1, IDR), Refusal::PayloadType),
            (vec![0x80, 96, 0, 1], Refusal::Malformed),
            (vec![0x40; 40], Refusal::Malformed),
            (rtp(96, 1, 1, &[]), Refusal::Payload),
        ] {
            assert_eq!(guard.check(&packet, attacker, now), Verdict::Refuse(reason));
        }
        assert_eq!(guard.latched(), None);
        assert_eq!(guard.last_accepted(), None);
        assert_eq!(guard.counters().total_refused(), 5);
    }

    #[test]
    fn an_expected_address_from_signalling_is_the_only_one_accepted() {
        let mut guard = video_guard(Some("10.0.0.2:0"));
        let now = Instant::now();
        assert_eq!(
            guard.check(&rtp(96, 7, 1, IDR), address("10.0.0.3:4000"), now),
            Verdict::Refuse(Refusal::Source)
        );
        assert!(matches!(
            guard.check(&rtp(96, 7, 1, IDR), address("10.0.0.2:4002"), now),
            Verdict::Latched { .. }
        ));
    }

    #[test]
    fn h264_payloads_a_depayloader_takes() {
        assert!(h264_payload_ok(IDR));
        // STAP-A with SPS (4 bytes) and PPS (2 bytes).
        assert!(h264_payload_ok(&[24, 0, 4, 0x67, 1, 2, 3, 0, 2, 0x68, 9]));
        // FU-A start of an IDR.
        assert!(h264_payload_ok(&[0x7c, 0x85, 0xaa, 0xbb]));
        for bad in [
            &[][..],
            &[0x80 | 5, 1][..],       // forbidden bit
            &[0, 1][..],              // type 0
            &[25, 0, 0, 0, 1][..],    // STAP-B
            &[26, 1, 2, 3][..],       // MTAP16
            &[27, 1, 2, 3][..],       // MTAP24
            &[29, 0x85, 1][..],       // FU-B
            &[30, 1][..],             // reserved
            &[31, 1][..],             // reserved
            &[24][..],                // empty STAP-A
            &[24, 0, 9, 0x67, 1][..], // unit longer than the packet
            &[24, 0, 0][..],          // zero-length unit
            &[24, 0, 2, 26, 1][..],   // aggregated MTAP
            &[0x7c][..],              // FU-A without header
            &[0x7c, 0x85][..],        // FU-A without data
            &[0x7c, 0xc5, 1][..],     // FU-A start and end at once
            &[0x7c, 0x9c, 1][..],     // FU-A of an FU-A
        ] {
            assert!(!h264_payload_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn audio_payloads_are_bounded() {
        let mut guard = Guard::new(Policy {
            payload_types: vec![0, 101],
            codec: Codec::Audio { max: 1500 },
            expected: None,
            relatch_after: Duration::from_secs(2),
        });
        let peer = address("10.0.0.2:4000");
        let now = Instant::now();
        guard.check(&rtp(0, 5, 1, &[0xff; 160]), peer, now);
        assert_eq!(guard.latched(), Some((peer, 5)));
        assert_eq!(
            guard.check(&rtp(101, 5, 9, &[1, 0x80, 0, 160]), peer, now),
            Verdict::Accept
        );
        assert_eq!(
            guard.check(&rtp(0, 5, 3, &[]), peer, now),
            Verdict::Refuse(Refusal::Payload)
        );
        assert_eq!(
            guard.check(&rtp(8, 5, 3, &[0xd5; 160]), peer, now),
            Verdict::Refuse(Refusal::PayloadType)
        );
    }
}
