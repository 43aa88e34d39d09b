// `log` actions and LOGMARK render to NFLOG groups (so the agent ships them to the API),
// and nflogGroups() finds exactly the groups a ruleset text logs to: the agent reads those.
import assert from "node:assert/strict";
import { test } from "node:test";
import { renderNft } from "../../../src/engine/index.ts";
import { nflogGroups } from "../../../src/engine/nft/index.ts";
import { Policy } from "../../../src/engine/policy/index.ts";

const render = (p: unknown) => {
  const r = renderNft(Policy.parse(p));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.text;
};

test("a log action goes to NFLOG group 2 by default; level or kernelLog add a kernel-log copy", () => {
  const text = render({
    chains: {
      c: {
        rules: [
          { comment: "plain", match: { protocol: "tcp", dport: 1 }, action: { type: "log", prefix: "A: " } },
          {
            comment: "copy",
            match: { protocol: "tcp", dport: 2 },
            action: { type: "log", prefix: "B: ", kernelLog: true },
          },
          { comment: "level", match: { protocol: "tcp", dport: 3 }, action: { type: "log", level: "info", group: 9 } },
        ],
      },
    },
  });
  assert.match(text, /tcp dport 1 log prefix "A: " group 2 comment "plain"/);
  assert.match(text, /tcp dport 2 log prefix "B: " level warn log prefix "B: " group 2 comment "copy"/);
  assert.match(text, /tcp dport 3 log level info log group 9 comment "level"/);
  assert.doesNotMatch(text, /log prefix "A: " comment/, "no kernel-log-only log statement");
});

test("level with kernelLog: false is refused, naming the field", () => {
  const r = renderNft(
    Policy.parse({ chains: { c: { rules: [{ action: { type: "log", level: "info", kernelLog: false } }] } } }),
  );
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.path]),
    [["nft_log_level_without_kernel_log", "/chains/c/rules/0/action/level"]],
  );
});

test("the port-scan trap's Portscan: log reaches NFLOG group 2", () => {
  const text = render({ protections: { portScanTrap: { ports: [139], banSeconds: 60 } } });
  assert.match(text, /log prefix "Portscan:" group 2 /);
  assert.deepEqual(nflogGroups(text), [2]);
});

test("nflogGroups: the groups of log and LOGMARK statements, distinct and sorted", () => {
  const text = render({
    chains: {
      c: {
        rules: [
          { comment: "lm", action: { type: "logmark", prefix: "LM " } },
          { comment: "lm7", action: { type: "logmark", group: 7 } },
          { comment: "log group 99", action: { type: "log", prefix: "group 98", group: 5 } },
          { action: "accept" },
        ],
      },
    },
  });
  assert.deepEqual(nflogGroups(text), [2, 5, 7]);
  assert.deepEqual(nflogGroups(render({ chains: { c: { rules: [{ action: "accept" }] } } })), []);
});

test("nflogGroups reads nft list output and ignores look-alikes", () => {
  const listed = `table inet palisade {
	chain log {
		log prefix "x group 4" level warn flags tcp sequence,options group 11 comment "log group 12"
		udp dport 7777 log prefix "PAL mark: " group 5
	}
	chain c {
		jump log
		ip saddr @log drop
		log snaplen 64 queue-threshold 2 group 0
	}
}
`;
  assert.deepEqual(nflogGroups(listed), [0, 5, 11]);
  assert.deepEqual(nflogGroups(""), []);
});
