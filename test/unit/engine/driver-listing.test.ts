// palisadeListing: Palisade's table blocks and object names out of `nft list ruleset` text.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { palisadeListing, NftError } from "../../../src/engine/driver/index.ts";

const PAL = `table inet palisade {
\tcomment "managed by palisade"
\tcounter hits {
\t\tpackets 3 bytes 252
\t}
\tquota q1 {
\t\tover 1000 bytes used 0 bytes
\t}
\tct helper helper_ftp_tcp {
\t\ttype "ftp" protocol tcp
\t\tl3proto inet
\t}
\tset bans {
\t\ttype ipv4_addr
\t\telements = { 192.0.2.1, 192.0.2.2,
\t\t\t     192.0.2.3 }
\t}
\tmap dispatch {
\t\ttype ipv4_addr : verdict
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr @bans counter name "hits" drop
\t}
}
`;
const FOREIGN = `# Warning: table ip filter is managed by iptables-nft, do not touch!
table ip filter {
\tchain INPUT {
\t\ttype filter hook input priority filter; policy accept;
\t}
}
`;
const SECOND = `table ip palisade_b {
\tchain helper {
\t}
}
`;

describe("palisadeListing", () => {
  it("keeps Palisade's blocks verbatim, sorted, and names their objects", () => {
    const l = palisadeListing(SECOND + FOREIGN + PAL);
    assert.deepEqual(l.tables, [
      { family: "inet", name: "palisade", comment: "managed by palisade" },
      { family: "ip", name: "palisade_b" },
    ]);
    assert.equal(l.text, PAL + SECOND);
    assert.deepEqual(l.objects?.chains.map((c) => `${c.table} ${c.name}`).sort(), [
      "palisade input",
      "palisade_b helper",
    ]);
    assert.deepEqual(
      l.objects?.sets.map((s) => `${s.kind} ${s.name}`),
      ["set bans", "map dispatch"],
    );
    assert.deepEqual(
      l.objects?.counters.map((c) => c.name),
      ["hits"],
    );
    assert.deepEqual(
      l.objects?.quotas.map((q) => q.name),
      ["q1"],
    );
    // With its type and protocol: the agent's plan replaces a helper that differs from the text.
    assert.deepEqual(l.objects?.ctHelpers, [
      { family: "inet", table: "palisade", name: "helper_ftp_tcp", type: "ftp", protocol: "tcp", l3proto: "inet" },
    ]);
  });

  it("an empty ruleset or only foreign tables is no table at all", () => {
    assert.deepEqual(palisadeListing(""), {
      tables: [],
      text: "",
      objects: { tables: [], chains: [], sets: [], counters: [], quotas: [], ctHelpers: [] },
    });
    assert.equal(palisadeListing(FOREIGN).text, "");
  });

  it("an object line it cannot read makes the names unknown, not wrong", () => {
    const l = palisadeListing(PAL.replace("chain input {", 'chain "in put" {'));
    assert.equal(l.objects, undefined);
    assert.equal(l.tables.length, 1);
    assert.equal(palisadeListing(PAL.replace("ct helper helper_ftp_tcp {", 'ct helper "ftp x" {')).objects, undefined);
    // A helper whose type line is not the one after its head: its type is not known.
    assert.equal(palisadeListing(PAL.replace('\t\ttype "ftp" protocol tcp\n', "")).objects, undefined);
  });

  it("a ct helper's protocol listed as a number (no /etc/protocols) is put back as nft parses it", () => {
    // nft 1.0.6 lists `protocol 6` on a host without netbase, and refuses that text on input.
    const withHelper = (proto: string) =>
      SECOND.replace("palisade_b", "palisade_u").replace(
        "chain helper {",
        `ct helper h {\n\t\ttype "tftp" protocol ${proto}\n\t\tl3proto inet\n\t}\n\tchain helper {`,
      );
    const named = PAL + withHelper("udp");
    const numeric = PAL.replace('type "ftp" protocol tcp', 'type "ftp" protocol 6') + withHelper("17");
    // The same blocks as when nft printed names; a foreign table's text is not Palisade's to touch.
    const l = palisadeListing(numeric + FOREIGN.replace("INPUT {", 'INPUT {\n\t\ttype "x" protocol 6'));
    assert.equal(l.text, palisadeListing(named).text);
    assert.match(l.text, /\t\ttype "ftp" protocol tcp\n[^]*\t\ttype "tftp" protocol udp\n/);
    // The names are the kernel's reading, as the JSON read gives them (the plan compares 6 as tcp).
    assert.deepEqual(
      l.objects?.ctHelpers.map((h) => `${h.name} ${h.type} ${h.protocol}`),
      ["helper_ftp_tcp ftp 6", "h tftp 17"],
    );
  });

  it("a listing cut inside a table is an error, not a shorter snapshot", () => {
    assert.throws(
      () => palisadeListing(PAL.slice(0, -2)),
      (e: unknown) => e instanceof NftError && e.code === "unexpected_output",
    );
  });
});
