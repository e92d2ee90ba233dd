// Logs in to the household page in a phone-sized Chromium, finds the pending reorder,
// approves it and waits until the order page says it was placed at the shop.
//
// Usage: node approve.mjs BASE_URL TOKEN SCREENSHOT.png [card|option|reject]
// `card` (the default) approves on the dashboard's card as proposed; `option` opens the
// order's page and approves another of the ways side by side (the first not checked);
// `reject` rejects it there, with a reason and a note.
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
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  await page.goto(`${base}/`);
  // Not logged in: the page sends us to the login form.
  await page.waitForURL(/\/login$/);
  await page.fill('input[name="token"]', token);
  await page.click('button:has-text("Log in")');
  await page.waitForURL(`${base}/`);

  const card = page.locator("[data-order]").first();
  await card.waitFor();
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-dashboard.png"), fullPage: true });
  const order = await card.getAttribute("data-order");
  const text = await card.innerText();
  if (!/Reorder/.test(text)) throw new Error(`unexpected card: ${text}`);

  let chosen = null;
  if (mode === "reject") {
    // Rejected on the order's page, with a reason and a note.
    await page.goto(`${base}/orders/${order}`);
    await page.selectOption('select[name="reason"]', "not_needed");
    await page.fill('input[name="note"]', "Bought some at the market");
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-reject.png"), fullPage: true });
    await page.click('button:has-text("Reject")');
    await page.waitForURL(`${base}/orders/${order}`);
    const state = (await page.locator("[data-state]").first().innerText()).trim();
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ order, state, chosen, screenshot }));
    if (state !== "cancelled") throw new Error(`order ${order} is ${state} after rejecting`);
    process.exit(0);
  }
  if (mode === "option") {
    await page.goto(`${base}/orders/${order}`);
    const other = page.locator('form.options input[type="radio"]:not(:checked)').first();
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
    state = (await page.locator("[data-state]").first().innerText()).trim();
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
