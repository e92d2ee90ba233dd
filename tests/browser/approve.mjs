// Logs in to the household page in a phone-sized Chromium, finds the pending reorder,
// approves it and waits until the order page says it was placed at the shop.
//
// Usage: node approve.mjs BASE_URL TOKEN SCREENSHOT.png [card|option|pickup|reject|collect]
// `card` (the default) approves on the dashboard's card as proposed; `option` opens the
// order's page and approves another of the ways side by side (the first not checked);
// `pickup` approves the first way that is collected at a pickup point; `reject` rejects it
// there, with a reason and a note; `collect` opens order $ORDER, ready at its pickup point,
// and says it was collected.
// $VIEWPORT: `phone` (the default, 390 × 844) or `desktop` (1280 × 900).
// Prints one JSON line: {"order": "o-000003", "state": "placed", "chosen": "shop|sku|…",
// "screenshot": "..."}.
// Chromium: $CHROMIUM, else /usr/bin/chromium (Debian's package).
import { chromium } from "playwright-core";

const [base, token, screenshot, mode = "card"] = process.argv.slice(2);
if (!base || !token || !screenshot) {
  console.error("usage: node approve.mjs BASE_URL TOKEN SCREENSHOT.png");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Containers and CI run as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const desktop = process.env.VIEWPORT === "desktop";
  const context = await browser.newContext(
    desktop
      ? { viewport: { width: 1280, height: 900 } }
      : { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  );
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  await page.goto(`${base}/`);
  // Not logged in: the page sends us to the login form.
  await page.waitForURL(/\/login$/);
  await page.fill('input[name="token"]', token);
  await page.click('button:has-text("Log in")');
  await page.waitForURL(`${base}/`);

  const stateOf = async () =>
    (await page.locator("[data-state]").first().getAttribute("data-state")).trim();

  if (mode === "collect") {
    // The order waits at its pickup point; the member says it was collected.
    const order = process.env.ORDER;
    await page.goto(`${base}/orders/${order}`);
    const text = await page.locator("main").innerText();
    if (!/ready to collect at /.test(text)) throw new Error(`not ready to collect: ${text}`);
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-ready.png"), fullPage: true });
    await page.click('button:has-text("We collected it")');
    await page.waitForURL(`${base}/orders/${order}`);
    const state = await stateOf();
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ order, state, chosen: null, screenshot }));
    if (state !== "delivered") throw new Error(`order ${order} is ${state} after collecting`);
    process.exit(0);
  }

  const card = page.locator("[data-order]").first();
  await card.waitFor();
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-dashboard.png"), fullPage: true });
  const order = await card.getAttribute("data-order");
  const text = await card.innerText();
  // The card speaks in words: what, from where, for how much, and when it arrives.
  if (!/^Order .+ from .+ for .+, (arriving|ready to collect) /m.test(text)) {
    throw new Error(`unexpected card: ${text}`);
  }

  let chosen = null;
  if (mode === "reject") {
    // Rejected on the order's page, with a reason and a note.
    await page.goto(`${base}/orders/${order}`);
    await page.selectOption('select[name="reason"]', "not_needed");
    await page.fill('input[name="note"]', "Bought some at the market");
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-reject.png"), fullPage: true });
    await page.click('button:has-text("Reject")');
    await page.waitForURL(`${base}/orders/${order}`);
    const state = await stateOf();
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ order, state, chosen, screenshot }));
    if (state !== "cancelled") throw new Error(`order ${order} is ${state} after rejecting`);
    process.exit(0);
  }
  if (mode === "option" || mode === "pickup") {
    await page.goto(`${base}/orders/${order}`);
    const other =
      mode === "pickup"
        ? page.locator('form.options label.option:has-text("collect at") input[type="radio"]').first()
        : page.locator('form.options input[type="radio"]:not(:checked)').first();
    await other.waitFor();
    chosen = await other.getAttribute("value");
    await other.check();
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-options.png"), fullPage: true });
    await page.click('button:has-text("Approve the chosen one")');
  } else {
    await card.locator('button:has-text("Approve")').click();
  }
  await page.waitForURL(`${base}/orders/${order}`);

  // Placing happens in the background: reload until the shop has accepted it.
  let state = "";
  for (let attempt = 0; attempt < 50; attempt++) {
    state = await stateOf();
    if (state === "placed" || state === "shipped" || state === "delivered") break;
    await page.waitForTimeout(200);
    await page.reload();
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ order, state, chosen, screenshot }));
  if (state !== "placed" && state !== "shipped" && state !== "delivered") {
    throw new Error(`order ${order} stayed ${state}`);
  }
} finally {
  await browser.close();
}
