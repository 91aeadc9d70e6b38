/**
 * The editor as a new user meets it, in a real browser: Debian's Chromium driven by playwright-core
 * against a real Node-RED (the packed package installed into a fresh user dir, the same harness as the
 * end-to-end tests, so CI runs this on Node-RED 4.1 / Node 20 and on Node-RED 5 / Node 22).
 *
 * For every node type: drag it from the palette, open its dialog, no field marked invalid on a fresh node
 * (config nodes: only their required fields), a readable title, no raw i18n key, help with a title and a body,
 * a label on every port. For every example: import it into an empty workspace, no red triangle, deploy with its
 * environment variables set and no warning, nothing logged as a warning or error. Screenshots of every dialog
 * and every example tab go to a folder printed at the start (MLC_SCREENSHOTS to choose it).
 *
 * Chromium: /usr/bin/chromium, or MLC_CHROMIUM. Without a browser the suite fails (CI installs it with apt).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, Browser, Page } from "playwright-core";
import { REPO_ROOT, tempDir, waitFor } from "../harness/nodered";
import { CREDENTIAL_REFS, FlowNode, Stack, startStack } from "../harness/stack";
import { BcSim } from "../sims/bc";
import { IntacctSim } from "../sims/intacct";

// The callbacks given to page.evaluate run in the browser; the project compiles without the DOM lib.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const window: any;
declare const document: any;

const PACKAGE = "node-red-contrib-ml-connector";
const CHROMIUM = process.env.MLC_CHROMIUM || "/usr/bin/chromium";
// Flags that work on a closed network: no background connections (they are refused and slow everything).
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

/** Palette types and, for config types, the palette node whose dialog opens them. */
const PALETTE_TYPES = ["mlc-acumatica-trigger", "mlc-acumatica-fetch", "mlc-intacct-fetch", "mlc-twilio-sms", "mlc-twilio-call", "mlc-twilio-verify", "mlc-twilio-email", "mlc-twilio-status", "mlc-dedupe", "mlc-audit", "mlc-exact-fetch", "mlc-bc-trigger", "mlc-bc-fetch", "mlc-sapb1-trigger", "mlc-sapb1-fetch", "mlc-intacct-trigger", "mlc-exact-trigger", "mlc-route"];
const CONFIG_TYPES: Record<string, { via: string; prop: string }> = {
  "mlc-acumatica-config": { via: "mlc-acumatica-trigger", prop: "acumatica" },
  "mlc-intacct-config": { via: "mlc-intacct-fetch", prop: "intacct" },
  "mlc-twilio-config": { via: "mlc-twilio-sms", prop: "twilio" },
  "mlc-exact-config": { via: "mlc-exact-fetch", prop: "exact" },
  "mlc-bc-config": { via: "mlc-bc-fetch", prop: "bc" },
  "mlc-sapb1-config": { via: "mlc-sapb1-fetch", prop: "sapb1" },
};
/** Fields shown or hidden by a mode: [mode select, value, field, shown]. */
const FIELD_VISIBILITY: Record<string, [string, string, string, boolean][]> = {
  "mlc-acumatica-fetch": [
    ["#node-input-operation", "get", "#node-input-select", true],
    ["#node-input-operation", "get", "#node-input-expand", true],
    ["#node-input-operation", "list", "#node-input-select", true],
    ["#node-input-operation", "list", "#node-input-filter", true],
    ["#node-input-operation", "put", "#node-input-putMode", true],
    ["#node-input-operation", "put", "#node-input-filter", false],
  ],
  "mlc-intacct-fetch": [
    ["#node-input-operation", "get", "#node-input-keyField", true],
    ["#node-input-operation", "get", "#node-input-orderBy", false],
    ["#node-input-operation", "query", "#node-input-orderBy", true],
    ["#node-input-operation", "query", "#node-input-keyField", false],
  ],
  "mlc-acumatica-trigger": [
    ["#node-input-mode", "push", "#node-input-modifiedField", false],
    ["#node-input-mode", "push", "#node-input-endpoint", true],
    ["#node-input-mode", "poll", "#node-input-modifiedField", true],
    ["#node-input-mode", "poll", "#node-input-endpoint", false],
  ],
  "mlc-exact-trigger": [
    ["#node-input-mode", "webhook", "#node-input-publicUrl", true],
    ["#node-input-mode", "webhook", "#node-input-interval", false],
    ["#node-input-mode", "poll", "#node-input-publicUrl", false],
    ["#node-input-mode", "poll", "#node-input-interval", true],
  ],
  "mlc-exact-fetch": [
    ["#node-input-operation", "get", "#node-input-entity", true],
    ["#node-input-operation", "enrich", "#node-input-entity", false],
    ["#node-input-operation", "list", "#node-input-filter", true],
    ["#node-input-operation", "enrich", "#node-input-select", false],
  ],
  "mlc-sapb1-fetch": [
    ["#node-input-operation", "get", "#node-input-select", true],
    ["#node-input-operation", "get", "#node-input-field", false],
    ["#node-input-operation", "list", "#node-input-filter", true],
    ["#node-input-operation", "patch", "#node-input-field", true],
    ["#node-input-operation", "patch", "#node-input-filter", false],
  ],
  "mlc-twilio-verify": [
    ["#node-input-operation", "check", "#node-input-channel", false],
    ["#node-input-operation", "start", "#node-input-channel", true],
  ],
};

/** An i18n key left untranslated: "mlc-twilio-sms.label.to", "errors.missing_env"… */
const RAW_KEY = /\bmlc-[a-z-]+\.[a-zA-Z]+\.[a-zA-Z.]+\b/;

const examples = (): { family: string; name: string; file: string }[] =>
  fs.readdirSync(path.join(REPO_ROOT, "examples")).flatMap((family) =>
    fs.readdirSync(path.join(REPO_ROOT, "examples", family)).filter((f) => f.endsWith(".json")).sort().map((f) => ({ family, name: f.slice(0, -5), file: path.join(REPO_ROOT, "examples", family, f) })),
  );

describe("editor in a real browser (Chromium, packed package in a real Node-RED)", function () {
  this.timeout(180000);
  let stack: Stack;
  let root: string;
  let browser: Browser;
  let page: Page;
  let shots: string;
  const pageErrors: string[] = [];
  const bcSim = new BcSim();
  const intacct = new IntacctSim();

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set MLC_CHROMIUM)`);
    root = tempDir("mlc-editor-");
    shots = process.env.MLC_SCREENSHOTS || path.join(os.tmpdir(), "mlc-editor-screenshots");
    fs.rmSync(shots, { recursive: true, force: true });
    fs.mkdirSync(shots, { recursive: true });
    process.stdout.write(`      screenshots: ${shots}\n`);
    await bcSim.start(); // the Business Central examples' trigger subscribes at deploy
    // The Intacct example polls as soon as it is deployed: its connection points at the Intacct simulator.
    await intacct.start();
    const intacctEnv = { INTACCT_URL: intacct.endpoint, INTACCT_COMPANY_ID: intacct.companyId, INTACCT_TIMEZONE: intacct.timeZone, INTACCT_SENDER_ID: intacct.senderId, INTACCT_SENDER_PASSWORD: intacct.senderPassword, INTACCT_USER_ID: intacct.userId, INTACCT_USER_PASSWORD: intacct.userPassword, APPROVER_PHONE: "+14155550123" };
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", families: [], extraEnv: { ...bcSim.env(), ...intacctEnv } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }); // playwright gives it a new empty profile
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("pageerror", (e) => pageErrors.push(String(e.message)));
    await openEditor();
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
    // A failed test must not leave a dialog open over the next one.
    for (const b of ["#node-config-dialog-cancel", "#node-dialog-cancel"]) {
      if (page && (await page.locator(b).isVisible().catch(() => false))) {
        await page.click(b);
        await page.waitForSelector(b, { state: "detached" });
      }
    }
  });

  after(async function () {
    await browser?.close();
    await stack?.stop();
    await bcSim.stop();
    await intacct.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  async function openEditor(): Promise<void> {
    await page.goto(stack.nodeRed.url, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => {
      return !!window.RED?.nodes?.getType?.("mlc-twilio-sms") && document.querySelector('.red-ui-palette-node[data-palette-type="mlc-twilio-sms"]');
    }, undefined, { timeout: 60000 });
    await page.waitForSelector("#red-ui-workspace-chart", { state: "visible" });
    await page.waitForSelector("#red-ui-loading-progress", { state: "hidden" }); // the loading veil fades out
    // Node-RED 4.1+ asks a new user once about update notifications; answer as a closed network would.
    // It is shown while the user setting telemetryEnabled is unset; the answer is kept for the next loads.
    const no = page.locator("button", { hasText: "do not enable notifications" });
    const asked = await page
      .waitForFunction(() => window.RED.settings.telemetryEnabled !== undefined || Array.from(document.querySelectorAll("button")).some((b: any) => /do not enable notifications/.test(b.innerText)), undefined, { timeout: 15000 })
      .then(() => no.isVisible())
      .catch(() => false);
    if (asked) {
      await no.click();
      await no.waitFor({ state: "detached" });
    }
  }

  async function shot(name: string, selector?: string): Promise<void> {
    const file = path.join(shots, `${name}.png`);
    if (selector) await page.locator(selector).last().screenshot({ path: file });
    else await page.screenshot({ path: file });
  }

  /** Fields shown invalid in the open (topmost) dialog: ids of the inputs marked with input-error. */
  function invalidFields(): Promise<string[]> {
    return page.evaluate(() => {
      const trays = document.querySelectorAll(".red-ui-tray");
      const tray = trays[trays.length - 1];
      return Array.from(tray.querySelectorAll(".input-error"))
        .filter((e: any) => e.offsetParent !== null)
        .map((e: any) => e.id || e.querySelector("input")?.id || e.previousElementSibling?.id || e.className);
    });
  }

  function trayText(): Promise<{ title: string; body: string }> {
    return page.evaluate(() => {
      const trays = document.querySelectorAll(".red-ui-tray");
      const tray = trays[trays.length - 1];
      return { title: tray.querySelector(".red-ui-tray-titlebar").innerText, body: tray.querySelector(".red-ui-tray-body").innerText };
    });
  }

  async function dragFromPalette(type: string, x: number, y: number): Promise<string> {
    const before = await page.evaluate((t) => window.RED.nodes.filterNodes({ type: t }).map((n: { id: string }) => n.id), type);
    const item = page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
    if (!(await item.isVisible())) {
      await page.fill("#red-ui-palette-search input", (await item.getAttribute("data-palette-label")) || type);
    }
    await item.scrollIntoViewIfNeeded();
    const dropped = (): Promise<string | undefined> =>
      page.evaluate(({ t, b }) => window.RED.nodes.filterNodes({ type: t }).map((n: { id: string }) => n.id).find((id: string) => !b.includes(id)), { t: type, b: before });
    // A drag that starts while the editor is still busy (a loaded machine) can be lost: try again, up to 3 times.
    for (let attempt = 1; ; attempt++) {
      const from = await item.boundingBox();
      const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
      assert.ok(from && chart, `palette item and workspace for ${type}`);
      await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
      await page.mouse.down();
      await page.mouse.move(chart.x + x, chart.y + y, { steps: 12 });
      await page.mouse.up();
      const id = await waitFor(dropped, 5000, `${type} dropped on the workspace`).catch((e: Error) => {
        if (attempt >= 3) throw e;
        return undefined;
      });
      if (id) {
        await page.fill("#red-ui-palette-search input", "");
        return id;
      }
    }
  }

  async function openDialog(id: string): Promise<void> {
    await page.locator(`g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`).dblclick();
    await page.waitForSelector("#node-dialog-ok", { state: "visible" });
    await page.waitForFunction(() => !document.querySelector(".red-ui-tray.red-ui-tray-opening"));
  }

  /**
   * Required defaults that are empty: the only fields a fresh node may show as invalid. A config-node reference
   * (defaults entry with a type) is required unless declared `required: false`, as Node-RED validates it.
   */
  function requiredEmpty(type: string): Promise<string[]> {
    return page.evaluate((t) => {
      const def = window.RED.nodes.getType(t);
      const prefix = def.category === "config" ? "node-config-input-" : "node-input-";
      return Object.entries(def.defaults as Record<string, { required?: boolean; value?: unknown; type?: string }>)
        .filter(([, d]) => (d.required || (d.type && d.required !== false)) && (d.value === "" || d.value === undefined))
        .map(([k]) => prefix + k);
    }, type);
  }

  async function checkHelp(type: string): Promise<void> {
    await page.evaluate((t) => window.RED.sidebar.help.show(t), type);
    const handle = await page.waitForFunction(() => {
      const h1 = document.querySelector("h1.red-ui-help-title");
      return h1 && h1.innerText && h1.parentElement.innerText.length > h1.innerText.length + 20 ? { title: h1.innerText, text: h1.parentElement.innerText } : null;
    });
    const help = (await handle.jsonValue()) as { title: string; text: string } | null;
    assert.ok(help, `help panel for ${type}`);
    assert.ok(help.title && !help.title.includes(type), `help title of ${type} is its palette label, not the type name (got "${help.title}")`);
    assert.ok(help.text.length > 200, `help of ${type} has a body`);
    assert.doesNotMatch(help.text, RAW_KEY, `help of ${type} has no raw i18n key`);
  }

  it("runs the expected Node-RED line and loads every type", async function () {
    const settings = await stack.nodeRed.getJson<{ version: string }>("/settings");
    process.stdout.write(`      (Node-RED ${settings.version}, ${await browser.version()})\n`);
    const expected = process.env.MLC_EXPECT_NODE_RED_MAJOR;
    if (expected) assert.equal(settings.version.split(".")[0], expected);
    const types = await page.evaluate(() => Array.from(document.querySelectorAll(".red-ui-palette-node[data-palette-type^='mlc-']")).map((e: any) => e.getAttribute("data-palette-type")));
    assert.deepEqual([...types].sort(), [...PALETTE_TYPES].sort());
  });

  PALETTE_TYPES.forEach((type, i) => {
    it(`${type}: dragged from the palette, a clean dialog, help and port labels`, async function () {
      const id = await dragFromPalette(type, 200 + (i % 3) * 250, 80 + Math.floor(i / 3) * 90);
      const labels = await page.evaluate((nid) => {
        const RED = window.RED;
        const n = RED.nodes.node(nid);
        const def = n._def;
        const out: string[] = [];
        for (let p = 0; p < n.outputs; p++) out.push(typeof def.outputLabels === "function" ? def.outputLabels.call(n, p) : (def.outputLabels || [])[p]);
        const inp: string[] = [];
        for (let p = 0; p < (def.inputs || 0); p++) inp.push(typeof def.inputLabels === "function" ? def.inputLabels.call(n, p) : def.inputLabels);
        return { out, inp, node: typeof def.label === "function" ? def.label.call(n) : n.type, palette: RED.utils.getPaletteLabel(n.type, def), valid: n.valid };
      }, id);
      for (const [k, l] of [...labels.out.map((l, p) => [`output ${p + 1}`, l]), ...labels.inp.map((l) => ["input", l])]) {
        assert.ok(typeof l === "string" && l.trim().length > 0, `${type} ${k} has a label`);
        assert.doesNotMatch(String(l), RAW_KEY, `${type} ${k} label is translated`);
      }
      assert.doesNotMatch(labels.node + " " + labels.palette, RAW_KEY);
      assert.ok(!labels.palette.startsWith("mlc-"), `${type} palette label (${labels.palette})`);
      await openDialog(id);
      const { title, body } = await trayText();
      assert.doesNotMatch(title + body, RAW_KEY, `${type} dialog text is translated`);
      assert.ok(!/mlc-[a-z]/.test(title), `${type} dialog title has no type name (${title})`);
      const allowedHere = await requiredEmpty(type);
      assert.deepEqual((await invalidFields()).filter((f) => !allowedHere.includes(f)), [], `${type}: no optional field marked invalid on a fresh node`);
      await shot(`dialog-${type}`, ".red-ui-tray");
      for (const [select, value, field, shown] of FIELD_VISIBILITY[type] ?? []) {
        await page.selectOption(select, value);
        assert.equal(await page.locator(field).isVisible(), shown, `${type}: ${field} ${shown ? "shown" : "hidden"} when ${select} is ${value}`);
      }
      const config = Object.entries(CONFIG_TYPES).find(([, c]) => c.via === type);
      if (config) {
        const [ctype, { prop }] = config;
        // The "+" next to the config select (Node-RED 4.1+: -btn-<prop>-add; earlier the pencil, -lookup-<prop>).
        await page.locator(`#node-input-btn-${prop}-add, #node-input-lookup-${prop}`).first().click();
        await page.waitForSelector("#node-config-dialog-ok", { state: "visible" });
        await page.waitForFunction(() => !document.querySelector(".red-ui-tray.red-ui-tray-opening"));
        const t = await trayText();
        assert.ok(!/mlc-[a-z]/.test(t.title), `config dialog title names no type (${t.title})`);
        assert.doesNotMatch(t.title + t.body, RAW_KEY, `${ctype} dialog text is translated`);
        const allowed = await requiredEmpty(ctype);
        const bad = (await invalidFields()).filter((f) => !allowed.includes(f));
        assert.deepEqual(bad, [], `${ctype}: only required empty fields are marked`);
        await shot(`dialog-${ctype}`, ".red-ui-tray");
        await page.click("#node-config-dialog-cancel");
        await page.waitForSelector("#node-config-dialog-ok", { state: "detached" });
        await checkHelp(ctype);
      }
      await page.click("#node-dialog-cancel");
      await page.waitForSelector("#node-dialog-ok", { state: "detached" });
      await checkHelp(type);
    });
  });

  it("the palette, with one of each node", async function () {
    await shot("palette-and-nodes");
    assert.deepEqual(pageErrors, [], "no script error in the editor");
  });

  async function clearWorkspace(): Promise<void> {
    await stack.nodeRed.deploy([]);
    await openEditor();
  }

  async function importExample(family: string, name: string, opts: Record<string, unknown> = {}): Promise<void> {
    // The same request the Import → Examples dialog makes.
    const url = `library/examples/flows/${PACKAGE}/${family}/${name}`;
    await page.evaluate(
      async ({ u, o }) => {
        const r = await fetch(u);
        if (!r.ok) throw new Error(`${u}: HTTP ${r.status}`);
        window.RED.view.importNodes(await r.json(), { addFlow: false, ...o });
      },
      { u: url, o: opts },
    );
  }

  const credentialRefs: Record<string, Record<string, string>> = {
    ...CREDENTIAL_REFS,
    "mlc-intacct-config": { senderId: "${INTACCT_SENDER_ID}", senderPassword: "${INTACCT_SENDER_PASSWORD}", userId: "${INTACCT_USER_ID}", userPassword: "${INTACCT_USER_PASSWORD}" },
  };

  for (const ex of examples()) {
    it(`example ${ex.family}/${ex.name}: imports into an empty workspace clean and deploys with no warning`, async function () {
      await clearWorkspace();
      await importExample(ex.family, ex.name);
      const flows = JSON.parse(fs.readFileSync(ex.file, "utf8")) as FlowNode[];
      const tabId = flows.find((n) => n.type === "tab")?.id;
      const state = await page.evaluate(() => {
        const RED = window.RED;
        const invalid: string[] = [];
        RED.nodes.eachNode((n: any) => { if (n.valid === false) invalid.push(`${n.type} "${n.name || n.id}"`); });
        RED.nodes.eachConfig((n: any) => { if (n.valid === false) invalid.push(`${n.type} "${n.name || n.id}"`); });
        const tabs: string[] = [];
        RED.nodes.eachWorkspace((w: any) => tabs.push(w.id));
        return { invalid, tabs, triangles: Array.from(document.querySelectorAll(".red-ui-flow-node-error")).filter((e: any) => e.style.display !== "none" && !e.classList.contains("hide")).length };
      });
      assert.deepEqual(state.invalid, [], "no node is invalid (red triangle) right after import");
      assert.ok(tabId && state.tabs.includes(tabId), "the example's tab was imported");
      await page.evaluate((id) => window.RED.workspaces.show(id), tabId);
      const comments = flows.filter((n) => n.type === "comment");
      assert.ok(comments.length >= 1, "the example says what to set, in a comment node");
      // Credentials as a user would type them: ${VAR} references to the environment.
      await page.evaluate((refs) => {
        const RED = window.RED;
        const fill = (n: any): void => {
          if (refs[n.type]) {
            n.credentials = { ...(n.credentials || {}), ...refs[n.type] };
            n.changed = true;
            n.dirty = true;
          }
        };
        RED.nodes.eachConfig(fill);
        RED.nodes.eachNode(fill);
        RED.nodes.dirty(true);
      }, credentialRefs);
      const logFrom = stack.nodeRed.log.length;
      await page.click("#red-ui-header-button-deploy");
      const outcome = await waitFor(
        () => page.evaluate(() => {
          if (document.querySelector(".red-ui-deploy-dialog-confirm-list")) return "warned: " + document.querySelector(".red-ui-notification").innerText;
          // Deployed: nothing left to deploy and the editor no longer shaded by the deploy in flight.
          return window.RED.nodes.dirty() || window.$("#red-ui-editor-shade").is(":visible") ? "" : "deployed";
        }),
        30000,
        "deploy",
      );
      assert.equal(outcome, "deployed");
      await waitFor(() => stack.nodeRed.log.slice(logFrom).some((l) => /Started flows/.test(l)), 30000, "flows started");
      // The picture people look at: notifications gone, zoomed out so the whole flow is in view.
      await page.evaluate(() => {
        window.$(".red-ui-notification").remove();
        window.RED.actions.invoke("core:zoom-out");
        window.RED.actions.invoke("core:zoom-out");
      });
      await shot(`example-${ex.family}-${ex.name}`);
      await page.evaluate(() => window.RED.actions.invoke("core:zoom-reset"));
      const problems = stack.nodeRed.log.slice(logFrom).filter((l) => /\[(warn|error)\]/.test(l));
      assert.deepEqual(problems, [], "nothing logged as a warning or an error after the deploy");
    });
  }

  it("importing a second example reuses the account config nodes (same ids, Import copy)", async function () {
    await clearWorkspace();
    await importExample("acumatica", "bill-approval-sms");
    await importExample("twilio", "twilio-events", { generateIds: true });
    const counts = await page.evaluate(() => {
      const RED = window.RED;
      const c: Record<string, number> = {};
      RED.nodes.eachConfig((n: any) => { c[n.type] = (c[n.type] || 0) + 1; });
      let tabs = 0;
      RED.nodes.eachWorkspace(() => { tabs++; });
      return { c, tabs };
    });
    assert.equal(counts.tabs, 3, "the empty Flow 1 and the two examples");
    assert.equal(counts.c["mlc-twilio-config"], 1, "one Twilio account config for both examples");
    assert.equal(counts.c["mlc-acumatica-config"], 1);
  });
});
