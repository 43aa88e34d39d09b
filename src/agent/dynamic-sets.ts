// The API asks what the policy's dynamic sets hold (port-scan trap bans, SYN-flood and
// recent meters), or to lift one element (docs/dynamic-sets.md). The agent answers from
// the kernel: only sets the policy made dynamic (engine dynamicSets.isDynamicSet) are
// listed or edited; any other name is refused with `not_dynamic_set`, nothing changed.
// A lift runs inside the applier's lock, so it never interleaves with an apply.
import { driver as kernel, dynamicSets, type DriverOptions } from "../engine/index.ts";
import type { DynamicSet, DynamicSetsRequest, DynamicSetsResult } from "../protocol/agent.ts";
import type { Applier } from "./apply.ts";
import { errorText } from "./errors.ts";

/** Elements per set when the request names no limit; the total is always reported. */
export const DEFAULT_ELEMENT_LIMIT = 1000;
const MAX_ELEMENT_LIMIT = 10_000;

export interface DynamicSetsOptions {
  driver: DriverOptions;
  /** Serialises kernel writes with applies (Applier.exclusive). */
  exclusive: Applier["exclusive"];
}

export async function answerDynamicSets(m: DynamicSetsRequest, o: DynamicSetsOptions): Promise<DynamicSetsResult> {
  const fail = (code: string, error: string): DynamicSetsResult => ({
    requestId: m.requestId,
    sets: [],
    errorCode: code,
    error,
  });
  try {
    if (m.deleteSet) {
      const c = dynamicSets.checkLift(m.deleteSet, m.deleteAddress);
      if (!c.ok) return fail(c.error.code === "invalid_set_name" ? "not_dynamic_set" : c.error.code, c.error.message);
      return await o.exclusive(async () => {
        const sets = await readDynamic(o.driver);
        const s = sets.find((x) => x.name === m.deleteSet);
        if (!s)
          return fail(
            "not_dynamic_set",
            `the kernel holds no dynamic set "${m.deleteSet}" of the policy (table inet ${dynamicSets.DYNAMIC_TABLE.name})`,
          );
        if ((s.type[0] === "ipv4_addr") !== (c.family === "ipv4"))
          return fail("malformed_address", `${c.address} is not of set ${s.name}'s type ${s.type[0]}`);
        if (!s.elements.some((e) => e.key === c.address))
          return fail("not_found", `set ${s.name} holds no element ${c.address} (it may have expired)`);
        await kernel.apply(dynamicSets.liftText(s.name, c.address), o.driver);
        return { requestId: m.requestId, sets: [view(s, [], 0)], errorCode: "", error: "" };
      });
    }
    const limit = Math.min(m.limit || DEFAULT_ELEMENT_LIMIT, MAX_ELEMENT_LIMIT);
    const st = await kernel.readTable("inet", dynamicSets.DYNAMIC_TABLE.name, o.driver).catch((e) => {
      // No policy applied: no dynamic sets.
      if (/No such file or directory|does not exist|not_found/i.test(errorText(e))) return undefined;
      throw e;
    });
    if (!st) return { requestId: m.requestId, sets: [], errorCode: "", error: "" };
    const sets = st.sets.filter((s) => dynamicSets.isDynamicSet(s, st.rules) && (!m.set || s.name === m.set));
    if (m.set && sets.length === 0)
      return fail("not_dynamic_set", `the kernel holds no dynamic set "${m.set}" of the policy`);
    return {
      requestId: m.requestId,
      sets: sets.map((s) =>
        view(
          s,
          st.rules.filter((r) => dynamicSets.ruleUsesSet(r.expr, s.name)).map((r) => r.comment ?? `${r.chain} rule`),
          limit,
        ),
      ),
      errorCode: "",
      error: "",
    };
  } catch (e) {
    return fail("kernel_error", errorText(e));
  }
}

async function readDynamic(driver: DriverOptions) {
  const st = await kernel.readTable("inet", dynamicSets.DYNAMIC_TABLE.name, driver);
  return st.sets.filter((s) => dynamicSets.isDynamicSet(s, st.rules));
}

type KernelSet = Awaited<ReturnType<typeof readDynamic>>[number];

function view(s: KernelSet, rules: string[], limit: number): DynamicSet {
  // nft -j prints timeouts and time left in seconds (ms precision is lost there).
  const ms = (sec: number | undefined) => String(Math.round((sec ?? 0) * 1000));
  return {
    name: s.name,
    type: s.type[0] ?? "",
    timeoutMs: ms(s.timeout),
    size: s.size ?? 0,
    owner: dynamicSets.ownerOf(s.name) ?? "",
    rules: [...new Set(rules)],
    elements: s.elements.slice(0, limit).map((e) => ({
      address: e.key,
      timeoutMs: ms(e.timeout ?? s.timeout),
      expiresMs: ms(e.expires),
    })),
    total: s.elements.length,
  };
}
