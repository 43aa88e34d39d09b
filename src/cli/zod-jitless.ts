// Imported first by the local verbs that validate one document and exit (render, validate),
// so that it precedes every schema: zod otherwise compiles each object schema into a
// `new Function` on its first parse, work that pays off only over many parses (and that no
// code cache can keep, src/cli/cached-script.ts). Results are the same either way.
import * as z from "zod";

z.config({ jitless: true });
