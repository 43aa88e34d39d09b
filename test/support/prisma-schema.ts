// A small reader for prisma/schema.prisma, enough to compare it with a real database:
// models, scalar fields (type, optional, @map, @db.*, @default), ids, uniques, indexes,
// relations (fields/references/onDelete) and enums. The project writes its schema in
// Prisma's canonical one-declaration-per-line style, which is all this handles.

export interface PrismaField {
  name: string;
  column: string;
  type: string;
  optional: boolean;
  list: boolean;
  nativeType: string | undefined;
  hasDefault: boolean;
  unique: boolean;
  id: boolean;
  relation?: { fields: string[]; references: string[]; onDelete: string | undefined };
}

export interface PrismaModel {
  name: string;
  table: string;
  fields: PrismaField[];
  id: string[];
  uniques: string[][];
  indexes: string[][];
}

export interface PrismaSchema {
  models: Map<string, PrismaModel>;
  enums: Map<string, { dbName: string; values: string[] }>;
}

const list = (s: string | undefined) =>
  s
    ? s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)
    : [];
const attr = (line: string, name: string) => new RegExp(`@${name}\\(([^)]*)\\)`).exec(line)?.[1];

export function parsePrismaSchema(text: string): PrismaSchema {
  const models = new Map<string, PrismaModel>();
  const enums = new Map<string, { dbName: string; values: string[] }>();
  const blocks = text.replace(/\/\/.*$/gm, "").matchAll(/^(model|enum)\s+(\w+)\s*\{([\s\S]*?)^\}/gm);
  for (const [, kind, name, body] of blocks) {
    const lines = body!
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const mapped = lines.map((l) => /^@@map\("([^"]+)"\)/.exec(l)?.[1]).find(Boolean) ?? name!;
    if (kind === "enum") {
      enums.set(name!, {
        dbName: mapped,
        values: lines.filter((l) => !l.startsWith("@@")).map((l) => l.split(/\s/)[0]!),
      });
      continue;
    }
    const model: PrismaModel = { name: name!, table: mapped, fields: [], id: [], uniques: [], indexes: [] };
    for (const line of lines) {
      const block = /^@@(id|unique|index)\(\[([^\]]*)\]/.exec(line);
      if (block) {
        const cols = list(block[2]);
        if (block[1] === "id") model.id = cols;
        else (block[1] === "unique" ? model.uniques : model.indexes).push(cols);
        continue;
      }
      if (line.startsWith("@@")) continue;
      const m = /^(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)$/.exec(line);
      if (!m) throw new Error(`schema.prisma: cannot read line "${line}" in model ${name}`);
      const [, fname, type, isList, opt, rest = ""] = m;
      const rel = attr(rest, "relation");
      const relFields = rel ? /fields:\s*\[([^\]]*)\]/.exec(rel)?.[1] : undefined;
      model.fields.push({
        name: fname!,
        column: /@map\("([^"]+)"\)/.exec(rest)?.[1] ?? fname!,
        type: type!,
        optional: !!opt,
        list: !!isList,
        nativeType: /@db\.(\w+(\([^)]*\))?)/.exec(rest)?.[1],
        hasDefault: /@default\(/.test(rest),
        unique: /@unique\b/.test(rest),
        id: /@id\b/.test(rest),
        ...(rel !== undefined && {
          relation: {
            fields: list(relFields),
            references: list(/references:\s*\[([^\]]*)\]/.exec(rel)?.[1]),
            onDelete: /onDelete:\s*(\w+)/.exec(rel)?.[1],
          },
        }),
      });
    }
    models.set(model.name, model);
  }
  // Resolve field names in @@id/@@unique/@@index and relations to column names.
  for (const model of models.values()) {
    const col = (f: string) => model.fields.find((x) => x.name === f)?.column ?? f;
    model.id = model.id.length ? model.id.map(col) : model.fields.filter((f) => f.id).map((f) => f.column);
    model.uniques = [
      ...model.uniques.map((u) => u.map(col)),
      ...model.fields.filter((f) => f.unique).map((f) => [f.column]),
    ];
    model.indexes = model.indexes.map((i) => i.map(col));
  }
  return { models, enums };
}
