import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  comment,
  ifname,
  logPrefix,
  quoteText,
  sanitizeText,
  textProblems,
  COMMENT_MAX_BYTES,
  LOG_PREFIX_MAX_BYTES,
} from "../../../src/engine/nft/quote.ts";
import { identifier, isIdentifier, palisadeTable } from "../../../src/engine/nft/names.ts";
import { lex } from "../../../src/engine/nft/lex.ts";
import { NftModelError } from "../../../src/engine/nft/errors.ts";

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof NftModelError, `expected NftModelError, got ${String(e)}`);
    return e.code;
  }
};

test("comment keeps ordinary text, including ; # { } and non-ASCII", () => {
  assert.equal(comment("allow ssh; from #ops {bastion} — é"), '"allow ssh; from #ops {bastion} — é"');
});

test("a double quote, backslash or control character never survives quoting", () => {
  assert.equal(comment('a" ; drop ; "b'), `"a' ; drop ; 'b"`);
  assert.equal(comment("a\\b"), '"a/b"');
  assert.equal(comment("line1\nline2\r\tx\u0000"), '"line1 line2  x "');
  assert.equal(comment("a\u2028b"), '"a b"');
});

test("log prefixes lose $ (nft expands $variables inside them); comments keep it", () => {
  assert.equal(logPrefix("DROP $x: "), '"DROP _x: "');
  assert.equal(comment("cost $5"), '"cost $5"');
});

test("length limits are measured in UTF-8 bytes and refused, not truncated", () => {
  assert.equal(comment("a".repeat(COMMENT_MAX_BYTES)).length, COMMENT_MAX_BYTES + 2);
  assert.equal(
    code(() => comment("a".repeat(COMMENT_MAX_BYTES + 1))),
    "string_too_long",
  );
  assert.equal(
    code(() => comment("é".repeat(COMMENT_MAX_BYTES / 2 + 1))),
    "string_too_long",
  );
  assert.equal(logPrefix("p".repeat(LOG_PREFIX_MAX_BYTES)).length, LOG_PREFIX_MAX_BYTES + 2);
  assert.equal(
    code(() => logPrefix("p".repeat(LOG_PREFIX_MAX_BYTES + 1))),
    "string_too_long",
  );
  assert.equal(
    code(() => comment("")),
    "invalid_string",
  );
  assert.deepEqual(textProblems("x".repeat(200), "comment"), ["comment is 200 bytes; nft allows at most 128"]);
});

test("property: any string quotes to exactly one nft string token or a typed refusal", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.constantFrom("comment" as const, "log prefix" as const),
      (s, kind) => {
        let q: string;
        try {
          q = quoteText(s, kind);
        } catch (e) {
          assert.ok(e instanceof NftModelError);
          assert.ok(["string_too_long", "invalid_string"].includes(e.code));
          return;
        }
        const r = lex(q);
        assert.equal(r.unterminated, undefined);
        assert.equal(r.tokens.length, 1);
        assert.equal(r.tokens[0]!.kind, "string");
        assert.equal(r.tokens[0]!.text, q);
        assert.ok(!/[\u0000-\u001f\u007f\\]/.test(q));
        assert.equal(q.slice(1, -1), sanitizeText(s, kind));
      },
    ),
    { numRuns: 2000 },
  );
});

test("interface names: IFNAMSIZ and a strict character set", () => {
  assert.equal(ifname("eth0"), '"eth0"');
  assert.equal(ifname("veth", { wildcard: true }), '"veth*"');
  assert.equal(ifname("br-lan.10@x"), '"br-lan.10@x"');
  for (const bad of ["", "a".repeat(16), "eth 0", "eth/0", 'e"th', "eth*", "..", "eth:0", "eth\n0"]) {
    assert.equal(
      code(() => ifname(bad)),
      "invalid_ifname",
      bad,
    );
  }
  assert.equal(
    code(() => ifname("a".repeat(15), { wildcard: true })),
    "invalid_ifname",
  );
});

test("identifiers: strict regex and nft keywords refused", () => {
  assert.equal(identifier("blocklist_v4"), "blocklist_v4");
  assert.ok(isIdentifier("saddr"), "context keywords like saddr work as names in nft 1.0.6");
  for (const bad of [
    "",
    "1abc",
    "_x",
    "a-b",
    "a b",
    'a"',
    "a;b",
    "a".repeat(64),
    "counter",
    "Counter",
    "ip",
    "flush",
    "mark",
  ]) {
    assert.equal(
      code(() => identifier(bad)),
      "invalid_identifier",
      bad,
    );
  }
  assert.equal(palisadeTable("palisade_nat"), "palisade_nat");
  assert.equal(
    code(() => palisadeTable("filter")),
    "foreign_table",
  );
});
