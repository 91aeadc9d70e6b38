/**
 * The functions of the Intacct simulator (reference sage-intacct.md §2.1, §5): `getAPISession`, `query`,
 * `readByQuery`, `readMore`. Each returns its `<result>` XML; failures are result-level, as the gateway reports them.
 */
import { randomBytes } from "node:crypto";
import type { IntacctSim } from "./intacct";
import { QueryError, SimRecord, compareValue, likeMatch, parseReadByQuery } from "./intacct-text";

/** What a function sees: the simulator, and the login or session of its operation. */
export interface FnContext {
  sim: IntacctSim;
  login?: { locationId: string; userKey: string };
  session?: { id: string; locationId: string; expiresAt: number };
}

/** One function's outcome. */
export interface FnResult {
  name: string;
  controlId: string;
  failed: boolean;
  xml: string;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function errorXml(errorno: string, description: string, description2 = "", correction = ""): string {
  return `<errormessage><error><errorno>${esc(errorno)}</errorno><description>${esc(description)}</description><description2>${esc(description2)}</description2><correction>${esc(correction)}</correction></error></errormessage>`;
}

class FnError extends Error {
  constructor(readonly errorno: string, readonly description2: string) {
    super(description2);
  }
}

const UPPER_NAME = /^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*$/;

function arr<T>(v: T | T[] | undefined): T[] {
  return v === undefined || v === null || (v as unknown) === "" ? [] : Array.isArray(v) ? v : [v];
}

function objectRows(sim: IntacctSim, object: unknown): SimRecord[] {
  const name = String(object ?? "");
  if (!UPPER_NAME.test(name) || !sim.records[name]) throw new FnError("Query Failed", `Object definition ${name} not found`);
  return sim.records[name];
}

function fieldName(f: unknown): string {
  const n = String(f ?? "");
  if (!UPPER_NAME.test(n)) throw new FnError("Query Failed", `Invalid field name ${n}`);
  return n;
}

function pageSize(v: unknown, max: number, fn: string, sim: IntacctSim): number {
  if (v === undefined) {
    sim.violations.push(`${fn} without pagesize (Intacct then pages by 100)`);
    return 100;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new FnError("Query Failed", `pagesize must be between 1 and ${max}`);
  return n;
}

const COND_OPS = new Set(["equalto", "notequalto", "lessthan", "lessthanorequalto", "greaterthan", "greaterthanorequalto", "between", "in", "notin", "like", "notlike", "isnull", "isnotnull"]);
type Pred = (r: SimRecord) => boolean;

function condition(op: string, body: Record<string, unknown>): Pred {
  if (!COND_OPS.has(op)) throw new FnError("Query Failed", `Unknown filter operator ${op}`);
  const field = fieldName(body?.field);
  const values = arr(body?.value as string | string[] | undefined).map(String);
  const cmp = (r: SimRecord, v: string) => compareValue(field, r[field] ?? "", v);
  for (const v of values) compareValue(field, "", v); // refuse bad date literals up front
  switch (op) {
    case "isnull": return (r) => (r[field] ?? "") === "";
    case "isnotnull": return (r) => (r[field] ?? "") !== "";
    case "between":
      if (values.length !== 2) throw new FnError("Query Failed", "between needs two values");
      return (r) => (r[field] ?? "") !== "" && cmp(r, values[0]) >= 0 && cmp(r, values[1]) <= 0;
    case "in": return (r) => values.some((v) => cmp(r, v) === 0);
    case "notin": return (r) => !values.some((v) => cmp(r, v) === 0);
    case "like": return (r) => likeMatch(r[field] ?? "", values[0] ?? "");
    case "notlike": return (r) => !likeMatch(r[field] ?? "", values[0] ?? "");
  }
  if (values.length !== 1) throw new FnError("Query Failed", `${op} needs one value`);
  const test = { equalto: (d: number) => d === 0, notequalto: (d: number) => d !== 0, lessthan: (d: number) => d < 0, lessthanorequalto: (d: number) => d <= 0, greaterthan: (d: number) => d > 0, greaterthanorequalto: (d: number) => d >= 0 }[op]!;
  return (r) => (r[field] ?? "") !== "" && test(cmp(r, values[0]));
}

/** A filter element's content → predicate; `<and>`/`<or>` need two or more conditions. */
function filterPred(node: Record<string, unknown>, root: boolean): Pred {
  const entries = Object.entries(node ?? {}).flatMap(([k, v]) => arr(v as unknown).map((x) => [k, x] as [string, Record<string, unknown>]));
  if (root && entries.length !== 1) throw new FnError("Query Failed", "filter must contain exactly one condition or one and/or");
  const preds = entries.map(([k, v]) => {
    if (k === "and" || k === "or") {
      const inner = Object.values(v ?? {}).reduce<number>((n, x) => n + arr(x as unknown).length, 0);
      if (inner < 2) throw new FnError("Query Failed", "Two or more conditions required for and/or");
      const parts = Object.entries(v).flatMap(([ik, iv]) => arr(iv as unknown).map((x) => filterPred({ [ik]: x }, false)));
      return k === "and" ? (r: SimRecord) => parts.every((p) => p(r)) : (r: SimRecord) => parts.some((p) => p(r));
    }
    return condition(k, v);
  });
  return (r) => preds.every((p) => p(r));
}

function recordXml(listType: string, r: SimRecord, fields: string[] | "*"): string {
  const names = fields === "*" ? Object.keys(r) : fields;
  return `<${listType}>${names.map((n) => (r[n] === undefined || r[n] === "" ? `<${n}/>` : `<${n}>${esc(r[n])}</${n}>`)).join("")}</${listType}>`;
}

function query(ctx: FnContext, q: Record<string, any>): string {
  const select = arr(q?.select?.field as string | string[]).map(fieldName);
  if (select.length === 0) throw new FnError("Query Failed", "select is required");
  const object = String(q.object ?? "");
  let rows = objectRows(ctx.sim, object).slice();
  if (q.filter !== undefined) rows = rows.filter(filterPred(q.filter, true));
  const orders = arr(q.orderby?.order as Record<string, unknown> | Record<string, unknown>[]);
  rows.sort((a, b) => {
    for (const o of orders) {
      const f = fieldName(o.field);
      const d = compareValue(f, a[f] ?? "", b[f] ?? "");
      if (d) return "descending" in o ? -d : d;
    }
    return Number(a.RECORDNO) - Number(b.RECORDNO);
  });
  const size = pageSize(q.pagesize, 2000, "query", ctx.sim);
  const offset = Number(q.offset ?? 0);
  if (!Number.isInteger(offset) || offset < 0) throw new FnError("Query Failed", "offset must be 0 or more");
  const page = rows.slice(offset, offset + size);
  const remaining = Math.max(0, rows.length - offset - page.length);
  return `<data listtype="${object}" totalcount="${rows.length}" offset="${offset}" count="${page.length}" numremaining="${remaining}">${page.map((r) => recordXml(object, r, select)).join("")}</data>`;
}

function pageXml(ctx: FnContext, listType: string, rows: SimRecord[], size: number, fields: string[] | "*", resultId?: string): string {
  const page = rows.slice(0, size);
  const rest = rows.slice(size);
  let id = "";
  if (rest.length) {
    id = resultId ?? randomBytes(8).toString("hex");
    ctx.sim.resultIds.set(id, { rows: rest, pos: 0, pageSize: size, expiresAt: ctx.sim.now() + ctx.sim.resultIdLifetimeMs, listType, fields });
  } else if (resultId) ctx.sim.resultIds.delete(resultId);
  return `<data listtype="${listType}" count="${page.length}" totalcount="${rows.length + 0}" numremaining="${rest.length}" resultId="${id}">${page.map((r) => recordXml(listType, r, fields)).join("")}</data>`;
}

function readByQuery(ctx: FnContext, q: Record<string, any>): string {
  const object = String(q.object ?? "");
  const all = objectRows(ctx.sim, object);
  const fieldsText = String(q.fields ?? "*").trim();
  const fields = fieldsText === "*" || fieldsText === "" ? "*" : fieldsText.split(",").map((f) => fieldName(f.trim()));
  if (q.returnFormat !== undefined && q.returnFormat !== "xml") throw new FnError("Query Failed", "this simulator answers returnFormat xml only");
  const size = pageSize(q.pagesize, 1000, "readByQuery", ctx.sim);
  let pred: (r: SimRecord) => boolean;
  try {
    pred = parseReadByQuery(typeof q.query === "string" ? q.query : "");
  } catch (e) {
    throw new FnError("Query Failed", e instanceof Error ? e.message : String(e));
  }
  const rows = all.filter(pred).sort((a, b) => Number(a.RECORDNO) - Number(b.RECORDNO));
  return pageXml(ctx, object, rows, size, fields);
}

function readMore(ctx: FnContext, q: Record<string, any>): string {
  const id = String(q?.resultId ?? "");
  const r = ctx.sim.resultIds.get(id);
  if (!r) throw new FnError("DL02000001", `There are no more records for resultId ${id}`);
  if (r.expiresAt <= ctx.sim.now()) {
    ctx.sim.resultIds.delete(id);
    throw new FnError("DL02000001", `resultId ${id} has expired`);
  }
  return pageXml(ctx, r.listType, r.rows, r.pageSize, r.fields, id);
}

function getAPISession(ctx: FnContext): string {
  if (!ctx.login) throw new FnError("XL03000006", "getAPISession requires login credentials");
  const s = ctx.sim.openSession(ctx.login.userKey, ctx.login.locationId);
  ctx.session = s;
  return `<data><api><sessionid>${esc(s.id)}</sessionid><endpoint>${esc(ctx.sim.url + ctx.sim.sessionEndpointPath)}</endpoint><locationid>${esc(s.locationId)}</locationid></api></data>`;
}

/** Run one `<function>` element. */
export function runFunction(ctx: FnContext, f: Record<string, any>): FnResult {
  const controlId = typeof f["@_controlid"] === "string" ? f["@_controlid"] : "";
  const name = Object.keys(f).find((k) => !k.startsWith("@_")) ?? "";
  const fail = (errorno: string, d2: string): FnResult => ({
    name,
    controlId,
    failed: true,
    xml: `<result><status>failure</status><function>${esc(name)}</function><controlid>${esc(controlId)}</controlid>${errorXml(errorno, d2.startsWith("Object") || errorno === "Query Failed" ? "Query Failed" : "", d2)}</result>`,
  });
  if (controlId.length < 1 || controlId.length > 256) {
    ctx.sim.violations.push("a function without a controlid attribute of 1-256 characters");
    return fail("XL03000003", "Function control ID must be between 1 and 256 characters in length.");
  }
  if ((ctx.sim.failFunctions[name] ?? 0) > 0) {
    ctx.sim.failFunctions[name]--;
    return fail("BL34000061", "Injected failure: the function could not be completed");
  }
  if (ctx.login && name !== "getAPISession") return fail("XL03000006", "Use getAPISession alone with login credentials, then the session id");
  try {
    const data = name === "getAPISession" ? getAPISession(ctx) : name === "query" ? query(ctx, f.query) : name === "readByQuery" ? readByQuery(ctx, f.readByQuery) : name === "readMore" ? readMore(ctx, f.readMore) : undefined;
    if (data === undefined) return fail("XL03000003", `Unknown function ${name}`);
    return { name, controlId, failed: false, xml: `<result><status>success</status><function>${esc(name)}</function><controlid>${esc(controlId)}</controlid>${data}</result>` };
  } catch (e) {
    if (e instanceof FnError) return fail(e.errorno, e.description2);
    if (e instanceof QueryError) return fail("Query Failed", e.message);
    throw e;
  }
}
