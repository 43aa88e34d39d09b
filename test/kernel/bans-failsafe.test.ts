// The ban chain's failsafe in a real kernel: the chain hooks prerouting at -310, before
// conntrack (-200), so the failsafe has to match what a packet carries, not conntrack state.
// A host whose ban list covers the API's address still gets the API's answers from the API
// port (its own connection), and nothing else from that address.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { bans } from "../../src/engine/index.ts";
import { createLab, type Link, type NetnsLab } from "../support/netns.ts";

const API_PORT = 8443;
const OTHER_PORT = 9000;

describe("ban chain failsafe (kernel, netns)", () => {
  let lab: NetnsLab;
  let agent: string;
  let api: string;
  let link: Link;
  before(async () => {
    lab = createLab();
    ({ client: agent, server: api, link } = await lab.pair());
    for (const port of [API_PORT, OTHER_PORT]) {
      lab.background(api, ["nc", "-l", "-k", String(port)], { maxLifetimeMs: 120_000 });
      lab.background(api, ["nc", "-6", "-l", "-k", String(port)], { maxLifetimeMs: 120_000 });
    }
    // The listeners are up when every port answers (bounded: 20 tries).
    for (const host of [link.b.ip4, link.b.ip6])
      for (const port of [API_PORT, OTHER_PORT]) {
        let up = false;
        for (let i = 0; i < 20 && !up; i++) up = await lab.tcpConnect(agent, host, port);
        assert.ok(up, `listener ${host} ${port} never answered`);
      }
  });
  after(() => lab.cleanup());

  for (const family of ["ipv4", "ipv6"] as const) {
    it(`${family}: a ban covering the API's address leaves the agent's API connection working, and only that`, async () => {
      const apiAddress = family === "ipv4" ? link.b.ip4 : link.b.ip6;
      const parsed = bans.parseBanAddress(apiAddress);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      const text = bans.banTableText(new Map([["edge", [{ address: parsed.value, timeoutMs: 60_000 }]]]), {
        apiAddresses: [apiAddress],
        apiPort: API_PORT,
      });
      await lab.nft(agent, ["-f", "-"], text);
      try {
        assert.equal(await lab.tcpConnect(agent, apiAddress, API_PORT, { timeoutS: 2 }), true, "the API port answers");
        assert.equal(
          await lab.tcpConnect(agent, apiAddress, OTHER_PORT, { timeoutS: 2 }),
          false,
          "any other answer from the banned address is dropped",
        );
      } finally {
        await lab.nft(agent, ["delete", "table", "inet", bans.BANS_TABLE]);
      }
      assert.equal(
        await lab.tcpConnect(agent, apiAddress, OTHER_PORT, { timeoutS: 2 }),
        true,
        "without the ban it answers",
      );
    });
  }
});
