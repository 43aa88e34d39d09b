// lscan --synscan, --cnscan, --grscan on nftables: how a TCP connection's handshake and
// first segments went, recorded in conntrack labels and read by the rule.
//
// Four labels (bits 120-123, Palisade's, like anti-spoofing's 126 and 127) record stages:
//   120 SYNACK  the responder (reply direction) answered the SYN with a SYN-ACK
//   121 ACK     then the initiator (original direction) sent a bare ACK: handshake complete
//   122 RDATA   the responder sent payload
//   123 ODATA   the initiator sent payload
// Labels are only ever set (nft cannot clear one bit), so the stages only advance. They are
// recorded by the chain lscan_track, entered from two base chains just after conntrack
// (prerouting and output, priority mangle - 1): together they see every packet once,
// forwarded, received or sent by this host, so a rule in input knows of SYN-ACKs and
// banners this host sent, which never pass input. Payload is "a byte exists at the
// transport payload's offset" (`@ih,0,8`: the kernel computes the offset from the TCP data
// offset; the load fails, and the rule does not match, on a segment without payload).
//
// The rule reads the labels on the initiator's FIN or RST (the "probably last packet" the
// scanner sends), one test per kind, each a different value of the masked labels, so a
// packet passes at most one and the tests may be alternatives for any action:
//   synscan  SYNACK only               (SYN, SYN-ACK, then FIN/RST instead of the ACK)
//   cnscan   ACK, no payload either way (handshake completed, closed without data)
//   grscan   RDATA, no ODATA            (the responder sent, the initiator closes silently)
// A connection whose initiator sent any payload is never a scan.
import type { Path } from "../../diagnostics.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export const LSCAN_LABEL = { synack: 120, ack: 121, replyData: 122, originalData: 123 } as const;
export type LscanKind = "synscan" | "cnscan" | "grscan";
export const LSCAN_TRACK_CHAIN = "lscan_track";

const L = LSCAN_LABEL;
const CLOSING = "ct direction original tcp flags & (fin | rst) != 0";
const LABEL_TEST: Record<LscanKind, string> = {
  synscan: `ct label & (${L.synack} | ${L.ack} | ${L.replyData} | ${L.originalData}) == ${L.synack}`,
  cnscan: `ct label & (${L.ack} | ${L.replyData} | ${L.originalData}) == ${L.ack}`,
  grscan: `ct label & (${L.replyData} | ${L.originalData}) == ${L.replyData}`,
};

export const isLscanKind = (k: string): k is LscanKind => k === "synscan" || k === "cnscan" || k === "grscan";

/** The rule's test for one kind (TCP assumed; the caller adds `meta l4proto tcp`). */
export const lscanTest = (kind: LscanKind): string => `${CLOSING} ${LABEL_TEST[kind]}`;

/** Declare the tracking chains (once per policy; every declaration is identical). */
export function declareLscanTracker(ctx: Ctx, path: Path): void {
  const owner = "lscan --synscan/--cnscan/--grscan";
  const comment = "lscan: the stages of each TCP connection, in conntrack labels 120-123";
  ctx.declareChain(
    { kind: "chain", family: FAMILY, table: TABLE, name: LSCAN_TRACK_CHAIN, comment },
    [
      // An initiator that sent payload never makes a scan: nothing more to record.
      { body: `ct label ${L.originalData} return`, comment: "lscan: the initiator sent data, not a scan" },
      {
        body: `ct direction reply tcp flags & (syn | ack) == syn | ack ct label set ${L.synack}`,
        comment: "lscan: the responder's SYN-ACK",
      },
      {
        body: `ct direction original ct label ${L.synack} tcp flags & (syn | rst | fin | ack) == ack ct label set ${L.ack}`,
        comment: "lscan: the initiator's ACK completes the handshake",
      },
      // `>= 0` holds for every byte: the test is whether the byte exists (see above).
      {
        body: `ct direction reply @ih,0,8 >= 0 ct label set ${L.replyData}`,
        comment: "lscan: the responder sent payload",
      },
      {
        body: `ct direction original @ih,0,8 >= 0 ct label set ${L.originalData}`,
        comment: "lscan: the initiator sent payload",
      },
    ],
    owner,
    path,
  );
  for (const hook of ["prerouting", "output"] as const)
    ctx.declareChain(
      {
        kind: "chain",
        family: FAMILY,
        table: TABLE,
        name: `${LSCAN_TRACK_CHAIN}_${hook}`,
        type: "filter",
        hook,
        priority: { base: "mangle", offset: -1 },
        comment: `lscan: every ${hook === "output" ? "locally sent" : "arriving"} TCP packet of a connection, just after conntrack`,
      },
      [
        {
          body: `meta l4proto tcp ct state established jump ${LSCAN_TRACK_CHAIN}`,
          comment: "lscan: record the connection's stages",
        },
      ],
      owner,
      path,
    );
}
