#!/usr/bin/env node
// End-to-end check of the test shop, through the same GraphQL documents the
// Rust adapter is meant to use (./graphql/{shop,admin}/*.graphql).
//
//   node tests/vendure/smoke.mjs            # starts its own server.js on a fresh temp
//                                           # data dir, runs everything, restarts it once
//                                           # (warm) and checks that nothing was duplicated
//   SMOKE_SHOP_API=... SMOKE_ADMIN_API=... SMOKE_CHANNEL_TOKEN=... node tests/vendure/smoke.mjs
//                                           # runs against an already running shop
//   SMOKE_VERBOSE=1                         # also print every GraphQL answer
//
// Prints one "ok"/"FAIL" line per check with the facts it saw, and ends with the
// plain line "N passed, N failed". Exit code 0 only if nothing failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const VERBOSE = !!process.env.SMOKE_VERBOSE;
const doc = (api, name) => fs.readFileSync(path.join(here, 'graphql', api, `${name}.graphql`), 'utf8');

const CUSTOMER = { username: 'household@example.com', password: 'replenish-test' };
const SUPERADMIN = {
    username: process.env.SUPERADMIN_USERNAME || 'superadmin',
    password: process.env.SUPERADMIN_PASSWORD || 'superadmin',
};
const ADDRESS = { fullName: 'Test Household', streetLine1: 'Musterstraße 5', city: 'Berlin', postalCode: '10117', countryCode: 'DE' };

let passed = 0;
let failed = 0;
const facts = {};

function check(name, ok, detail) {
    const d = detail === undefined ? '' : ' ' + (typeof detail === 'string' ? detail : JSON.stringify(detail));
    if (ok) {
        passed++;
        console.log(`ok   - ${name}${d}`);
    } else {
        failed++;
        console.log(`FAIL - ${name}${d}`);
    }
    return ok;
}

class Client {
    constructor(url, channelToken, label) {
        this.url = url;
        this.channelToken = channelToken;
        this.label = label;
        this.token = undefined;
        this.lastAuthHeader = undefined;
    }
    /** Raw GraphQL answer: { data, errors }. Remembers a new session token when one is sent. */
    async raw(query, variables = {}) {
        const headers = { 'content-type': 'application/json' };
        if (this.channelToken) headers['vendure-token'] = this.channelToken;
        if (this.token) headers.authorization = `Bearer ${this.token}`;
        const res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
        this.lastAuthHeader = res.headers.get('vendure-auth-token') || undefined;
        if (this.lastAuthHeader) this.token = this.lastAuthHeader;
        const text = await res.text();
        let body;
        try {
            body = JSON.parse(text);
        } catch {
            throw new Error(`${this.label}: HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
        }
        if (VERBOSE) console.log(`  [${this.label}] ${JSON.stringify(variables)} -> ${JSON.stringify(body)}`);
        return body;
    }
    /** The data of an answer; throws if the answer has top-level errors. */
    async q(query, variables) {
        const body = await this.raw(query, variables);
        if (body.errors?.length) throw new Error(`${this.label}: GraphQL errors: ${JSON.stringify(body.errors)}`);
        return body.data;
    }
}

// ------------------------------------------------------------ server ----

async function startServer(dataDir, logFile) {
    const t0 = Date.now();
    const log = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, [path.join(here, 'server.js')], {
        env: { ...process.env, PORT: '0', VENDURE_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', log],
    });
    fs.closeSync(log);
    let stdout = '';
    const ready = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ready line within 120 s')), 120000);
        child.stdout.on('data', chunk => {
            stdout += chunk;
            const nl = stdout.indexOf('\n');
            if (nl >= 0) {
                clearTimeout(timer);
                try {
                    resolve(JSON.parse(stdout.slice(0, nl)));
                } catch (e) {
                    reject(new Error(`ready line is not JSON: ${stdout.slice(0, nl)}`));
                }
            }
        });
        child.on('exit', code => {
            clearTimeout(timer);
            reject(new Error(`server exited with ${code} before ready`));
        });
    });
    const ms = Date.now() - t0;
    // Anything else on stdout would break a parser that expects exactly one line.
    child.stdout.on('data', chunk => {
        stdout += chunk;
    });
    const rssKiB = readRssKiB(child.pid);
    return { child, ready, ms, rssKiB, extraStdout: () => stdout.slice(stdout.indexOf('\n') + 1) };
}

function readRssKiB(pid) {
    try {
        const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
        return m ? Number(m[1]) : undefined;
    } catch {
        return undefined;
    }
}

async function stopServer(server) {
    const t0 = Date.now();
    const exited = new Promise(resolve => server.child.on('exit', (code, signal) => resolve({ code, signal })));
    server.child.kill('SIGTERM');
    const timeout = new Promise(resolve => setTimeout(() => resolve({ code: 'timeout' }), 20000));
    const r = await Promise.race([exited, timeout]);
    if (r.code === 'timeout') server.child.kill('SIGKILL');
    return { ...r, ms: Date.now() - t0 };
}

// ------------------------------------------------------------- checks ----

const isNumString = s => typeof s === 'string' && /^\d+$/.test(s);

async function shopLogin(ready) {
    const shop = new Client(ready.shop_api, ready.channel_token, 'shop');
    const r = await shop.q(doc('shop', 'login'), CUSTOMER);
    return { shop, login: r.login, header: shop.lastAuthHeader };
}

async function mainFlow(ready) {
    const runId = `${Date.now().toString(36)}-${process.pid}`;
    const KEY_A = `smoke-${runId}-A`;
    const KEY_B = `smoke-${runId}-B`;
    const KEY_C = `smoke-${runId}-C`;

    // a. login ---------------------------------------------------------------
    const anon = new Client(ready.shop_api, ready.channel_token, 'shop-anon');
    const bad = await anon.q(doc('shop', 'login'), { username: CUSTOMER.username, password: 'wrong' });
    check('a. login with a wrong password answers an ErrorResult', bad.login.errorCode === 'INVALID_CREDENTIALS_ERROR', bad.login);

    let { shop, login, header } = await shopLogin(ready);
    check('a. login answers CurrentUser', login.__typename === 'CurrentUser' && login.identifier === CUSTOMER.username, login);
    check('a. login sends the session token in the vendure-auth-token header', !!header && header.length > 10, `${header?.slice(0, 8)}… (${header?.length} chars)`);
    check('a. the channel token from the ready line is the one the user sees', login.channels?.[0]?.token === ready.channel_token, login.channels);
    const me = await shop.q(doc('shop', 'active-customer'));
    check('a. bearer + vendure-token headers: activeCustomer works', me.activeCustomer?.emailAddress === CUSTOMER.username, {
        id: me.activeCustomer?.id,
        addresses: me.activeCustomer?.addresses?.map(a => `${a.streetLine1}, ${a.postalCode} ${a.city}, ${a.country.code}`),
    });
    const noToken = new Client(ready.shop_api, ready.channel_token, 'shop-anon');
    const meAnon = await noToken.q(doc('shop', 'active-customer'));
    check('a. without the bearer token activeCustomer is null', meAnon.activeCustomer === null);

    // Start from a clean active order (a warm DB may hold one from an earlier run).
    const pre = await shop.q(doc('shop', 'active-order'));
    if (pre.activeOrder?.lines.length) await shop.q(doc('shop', 'remove-all-order-lines'));

    // b. catalog ---------------------------------------------------------------
    const cat = await shop.q(doc('shop', 'catalog'), { take: 100 });
    const variants = cat.products.items.flatMap(p => p.variants.map(v => ({ ...v, product: p.slug })));
    const bySku = Object.fromEntries(variants.map(v => [v.sku, v]));
    check('b. catalog: 5 products, 7 variants', cat.products.totalItems === 5 && variants.length === 7, variants.map(v => v.sku));
    const cb = bySku['coffee-beans-500g'];
    check(
        'b. coffee-beans-500g: price/priceWithTax/currency/stockLevel/customFields',
        cb && cb.priceWithTax === 899 && cb.price === 755 && cb.currencyCode === 'EUR' && isNumString(cb.stockLevel) &&
            cb.customFields.consumable === 'coffee_beans' && cb.customFields.packSize === 500 && cb.customFields.unit === 'g',
        cb,
    );
    check('b. every stockLevel is a number string', variants.every(v => isNumString(v.stockLevel)), variants.map(v => `${v.sku}=${v.stockLevel}`));
    check('b. dishwasher-tabs-80 is out of stock (stockLevel "0")', bySku['dishwasher-tabs-80']?.stockLevel === '0', bySku['dishwasher-tabs-80']);
    const dw = await shop.q(doc('shop', 'product-variants-by-consumable'), { slug: 'dishwasher-tablets', consumable: 'dishwasher_tablets' });
    check(
        'b. variantList filtered by the consumable custom field',
        dw.product.variantList.totalItems === 2,
        dw.product.variantList.items.map(v => `${v.sku} ${v.priceWithTax} stock=${v.stockLevel}`),
    );
    const s = await shop.q(doc('shop', 'search'), { term: 'dishwasher' });
    check(
        'b. search (DefaultSearchPlugin) finds both dishwasher packs with inStock',
        s.search.items.length === 2 && s.search.items.some(i => i.sku === 'dishwasher-tabs-80' && i.inStock === false),
        s.search.items.map(i => `${i.sku} inStock=${i.inStock} ${JSON.stringify(i.priceWithTax)}`),
    );

    // c. order A: home delivery ---------------------------------------------------
    let r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: cb.id, quantity: 2 });
    check('c. addItemToOrder -> Order in AddingItems', r.addItemToOrder.__typename === 'Order' && r.addItemToOrder.state === 'AddingItems', {
        code: r.addItemToOrder.code,
        state: r.addItemToOrder.state,
        totalWithTax: r.addItemToOrder.totalWithTax,
    });
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['eggs-6'].id, quantity: 1 });
    const orderA = r.addItemToOrder;
    r = await shop.q(doc('shop', 'set-order-custom-fields'), { idempotencyKey: KEY_A, reference: 'smoke order A' });
    check('c. setOrderCustomFields stores idempotencyKey + reference', r.setOrderCustomFields.customFields?.idempotencyKey === KEY_A, r.setOrderCustomFields);
    r = await shop.q(doc('shop', 'set-order-shipping-address'), { input: ADDRESS });
    check('c. setOrderShippingAddress', r.setOrderShippingAddress.__typename === 'Order', r.setOrderShippingAddress.shippingAddress);
    const esm = (await shop.q(doc('shop', 'eligible-shipping-methods'))).eligibleShippingMethods;
    const home = esm.find(m => m.code === 'home-delivery');
    const cc = esm.find(m => m.code === 'click-and-collect');
    check('c. eligibleShippingMethods: home-delivery with customFields', home?.priceWithTax === 495 && home.customFields.kind === 'delivery' && home.customFields.leadDaysMax === 2, home);
    check('c. eligibleShippingMethods: click-and-collect with pickup customFields', cc?.priceWithTax === 0 && cc.customFields.kind === 'pickup' && !!cc.customFields.pickupAddress, cc);
    facts.shippingPriceIsFractional = !Number.isInteger(home?.price);
    r = await shop.q(doc('shop', 'set-order-shipping-method'), { shippingMethodId: [home.id] });
    check('c. setOrderShippingMethod(home-delivery)', r.setOrderShippingMethod.shippingLines?.[0]?.shippingMethod.code === 'home-delivery', {
        shippingWithTax: r.setOrderShippingMethod.shippingWithTax,
        totalWithTax: r.setOrderShippingMethod.totalWithTax,
    });
    const epm = (await shop.q(doc('shop', 'eligible-payment-methods'))).eligiblePaymentMethods;
    check('c. eligiblePaymentMethods has auto-settle', epm.some(m => m.code === 'auto-settle' && m.isEligible), epm);
    r = await shop.q(doc('shop', 'transition-order-to-state'), { state: 'ArrangingPayment' });
    check('c. transitionOrderToState(ArrangingPayment)', r.transitionOrderToState.state === 'ArrangingPayment', r.transitionOrderToState);
    r = await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: { shouldError: true } });
    check('c. addPaymentToOrder with metadata.shouldError -> PAYMENT_FAILED_ERROR', r.addPaymentToOrder.errorCode === 'PAYMENT_FAILED_ERROR', r.addPaymentToOrder);
    r = await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: { shouldDecline: true } });
    check('c. addPaymentToOrder with metadata.shouldDecline -> PAYMENT_DECLINED_ERROR', r.addPaymentToOrder.errorCode === 'PAYMENT_DECLINED_ERROR', r.addPaymentToOrder);
    const afterDecline = (await shop.q(doc('shop', 'active-order'))).activeOrder;
    check('c. after a declined payment the order is still active in ArrangingPayment', afterDecline?.state === 'ArrangingPayment', afterDecline?.state);
    r = await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: {} });
    const placedA = r.addPaymentToOrder;
    check('c. addPaymentToOrder -> PaymentSettled', placedA.state === 'PaymentSettled' && placedA.active === false, {
        code: placedA.code,
        state: placedA.state,
        totalWithTax: placedA.totalWithTax,
        customFields: placedA.customFields,
        payments: placedA.payments,
    });
    const cbAfter = (await shop.q(doc('shop', 'catalog'), { take: 100 })).products.items.flatMap(p => p.variants).find(v => v.sku === cb.sku);
    check('c. placing the order allocates stock: stockLevel drops by 2', Number(cbAfter.stockLevel) === Number(cb.stockLevel) - 2, `${cb.stockLevel} -> ${cbAfter.stockLevel}`);
    const nowActive = (await shop.q(doc('shop', 'active-order'))).activeOrder;
    check('c. after payment there is no activeOrder', nowActive === null, nowActive);

    // d/e. order B not yet placed, duplicate key, lost session ----------------------
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['milk-whole-1l'].id, quantity: 2 });
    const orderB = r.addItemToOrder;
    r = await shop.q(doc('shop', 'set-order-custom-fields'), { idempotencyKey: KEY_B });
    check('d. order B (AddingItems) carries key B', r.setOrderCustomFields.customFields?.idempotencyKey === KEY_B, r.setOrderCustomFields);
    const dup = await shop.raw(doc('shop', 'set-order-custom-fields'), { idempotencyKey: KEY_A });
    check(
        'e. same idempotencyKey on a second order is refused (top-level GraphQL error, data null)',
        dup.data === null && dup.errors?.length === 1 && /UNIQUE constraint failed/.test(dup.errors[0].message),
        { data: dup.data, errors: dup.errors?.map(e => ({ message: e.message, path: e.path, extensions: e.extensions })) },
    );
    facts.duplicateKeyError = dup.errors?.[0];
    const stillB = (await shop.q(doc('shop', 'active-order'))).activeOrder;
    check('e. the refused write left order B unchanged', stillB?.customFields.idempotencyKey === KEY_B, stillB?.customFields);

    // "lose" the session: forget the token, log in again
    ({ shop, header } = await shopLogin(ready));
    check('d. second login gives a new session token', !!header);
    const ao = (await shop.q(doc('shop', 'active-order'))).activeOrder;
    check('d. after re-login activeOrder is the unplaced order B with its key', ao?.code === orderB.code && ao.customFields.idempotencyKey === KEY_B, ao);
    let f = await shop.q(doc('shop', 'orders-by-idempotency-key'), { key: KEY_A });
    check(
        'd. activeCustomer.orders filter { idempotencyKey: { eq } } finds placed order A',
        f.activeCustomer.orders.totalItems === 1 && f.activeCustomer.orders.items[0].code === placedA.code,
        f.activeCustomer.orders.items,
    );
    f = await shop.q(doc('shop', 'orders-by-idempotency-key'), { key: KEY_B });
    check(
        'd. ... and also finds the active (not placed) order B',
        f.activeCustomer.orders.totalItems === 1 && f.activeCustomer.orders.items[0].code === orderB.code,
        f.activeCustomer.orders.items,
    );
    f = await shop.q(doc('shop', 'orders-by-idempotency-key'), { key: `no-such-${runId}` });
    check('d. unknown key -> totalItems 0', f.activeCustomer.orders.totalItems === 0);
    const recent = await shop.q(doc('shop', 'recent-orders'), { take: 5 });
    check(
        'd. fallback: recent orders (createdAt DESC) include both keys',
        [KEY_A, KEY_B].every(k => recent.activeCustomer.orders.items.some(o => o.customFields.idempotencyKey === k)),
        recent.activeCustomer.orders.items.map(o => `${o.code} ${o.state} ${o.customFields.idempotencyKey}`),
    );
    let obc = (await shop.q(doc('shop', 'order-by-code'), { code: placedA.code })).orderByCode;
    check('d. orderByCode works for own order after re-login', obc?.code === placedA.code && obc.state === 'PaymentSettled', {
        state: obc?.state,
        lines: obc?.lines,
    });
    // orderByCode access: Vendure's DefaultOrderByCodeAccessStrategy('2h') lets an
    // ANONYMOUS session read any order for 2 h after it was placed; another logged-in
    // customer is refused.
    const anonObc = await new Client(ready.shop_api, ready.channel_token, 'shop-anon').raw(doc('shop', 'order-by-code'), { code: placedA.code });
    check('d. orderByCode with NO session still answers within 2 h of placement (Vendure default)', anonObc.data?.orderByCode?.code === placedA.code, {
        state: anonObc.data?.orderByCode?.state,
    });
    const other = new Client(ready.shop_api, ready.channel_token, 'shop-other');
    const otherEmail = `other-${runId}@example.com`;
    r = await other.q(doc('shop', 'register-customer-account'), { input: { emailAddress: otherEmail, password: 'other-pass', firstName: 'O', lastName: 'Ther' } });
    check('d. registerCustomerAccount (requireVerification=false)', r.registerCustomerAccount.success === true, r.registerCustomerAccount);
    r = await other.q(doc('shop', 'login'), { username: otherEmail, password: 'other-pass' });
    check('d. the new customer can log in at once', r.login.__typename === 'CurrentUser', r.login.__typename);
    const otherObc = await other.raw(doc('shop', 'order-by-code'), { code: placedA.code });
    check('d. orderByCode for somebody else\'s order is refused', !otherObc.data?.orderByCode && !!otherObc.errors, {
        data: otherObc.data,
        errors: otherObc.errors?.map(e => ({ message: e.message, code: e.extensions?.code })),
    });
    facts.foreignOrderByCode = otherObc.errors;

    // f. stock errors on order B -------------------------------------------------------
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['dishwasher-tabs-80'].id, quantity: 1 });
    check(
        'f. out-of-stock variant -> INSUFFICIENT_STOCK_ERROR, quantityAvailable 0',
        r.addItemToOrder.errorCode === 'INSUFFICIENT_STOCK_ERROR' && r.addItemToOrder.quantityAvailable === 0,
        { errorCode: r.addItemToOrder.errorCode, message: r.addItemToOrder.message, quantityAvailable: r.addItemToOrder.quantityAvailable },
    );
    const dw40 = bySku['dishwasher-tabs-40'];
    const dw40Stock = Number(
        (await shop.q(doc('shop', 'product-variants-by-consumable'), { slug: 'dishwasher-tablets', consumable: 'dishwasher_tablets' })).product.variantList.items.find(
            v => v.sku === 'dishwasher-tabs-40',
        ).stockLevel,
    );
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: dw40.id, quantity: dw40Stock + 1 });
    const partial = r.addItemToOrder;
    const partialLine = partial.order?.lines.find(l => l.productVariant.sku === 'dishwasher-tabs-40');
    check(
        'f. quantity beyond stock -> INSUFFICIENT_STOCK_ERROR and the available quantity IS added',
        partial.errorCode === 'INSUFFICIENT_STOCK_ERROR' && partial.quantityAvailable === dw40Stock && partialLine?.quantity === dw40Stock,
        { asked: dw40Stock + 1, errorCode: partial.errorCode, message: partial.message, quantityAvailable: partial.quantityAvailable, lineQuantity: partialLine?.quantity },
    );
    if (partialLine) {
        r = await shop.q(doc('shop', 'adjust-order-line'), { orderLineId: partialLine.id, quantity: 3 });
        const adjusted = r.adjustOrderLine.lines?.find(l => l.id === partialLine.id);
        check('f. adjustOrderLine brings the partial line down to 3', adjusted?.quantity === 3, r.adjustOrderLine.lines);
        r = await shop.q(doc('shop', 'remove-order-line'), { orderLineId: partialLine.id });
        check('f. removeOrderLine takes the partial line out again', r.removeOrderLine.lines?.every(l => l.productVariant.sku !== 'dishwasher-tabs-40'), r.removeOrderLine.lines);
    }
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: dw40.id, quantity: 5001 });
    check('f. more than orderItemsLimit (5000) -> ORDER_LIMIT_ERROR', r.addItemToOrder.errorCode === 'ORDER_LIMIT_ERROR', r.addItemToOrder);

    r = await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: {} });
    check('c. addPaymentToOrder while still AddingItems -> ORDER_PAYMENT_STATE_ERROR', r.addPaymentToOrder.errorCode === 'ORDER_PAYMENT_STATE_ERROR', r.addPaymentToOrder);

    const stockOf = async sku =>
        Number((await shop.q(doc('shop', 'catalog'), { take: 100 })).products.items.flatMap(p => p.variants).find(v => v.sku === sku).stockLevel);
    const milkBeforeB = await stockOf('milk-whole-1l');

    // g. click and collect for order B, no shipping address at all ----------------------
    r = await shop.q(doc('shop', 'set-order-shipping-method'), { shippingMethodId: [cc.id] });
    check('g. setOrderShippingMethod(click-and-collect) without a shipping address', r.setOrderShippingMethod.shippingLines?.[0]?.shippingMethod.code === 'click-and-collect', r.setOrderShippingMethod);
    r = await shop.q(doc('shop', 'transition-order-to-state'), { state: 'ArrangingPayment' });
    check('g. transition to ArrangingPayment works without a shipping address', r.transitionOrderToState.state === 'ArrangingPayment', r.transitionOrderToState);
    r = await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: {} });
    const placedB = r.addPaymentToOrder;
    check('g. click-and-collect order B is PaymentSettled', placedB.state === 'PaymentSettled', { code: placedB.code, totalWithTax: placedB.totalWithTax });

    // order C: error paths around ArrangingPayment, then placed for a partial cancellation
    await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['coffee-beans-1kg'].id, quantity: 2 });
    await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['eggs-6'].id, quantity: 1 });
    await shop.q(doc('shop', 'set-order-custom-fields'), { idempotencyKey: KEY_C });
    r = await shop.q(doc('shop', 'transition-order-to-state'), { state: 'ArrangingPayment' });
    check('c. ArrangingPayment without a shipping method -> ORDER_STATE_TRANSITION_ERROR', r.transitionOrderToState.errorCode === 'ORDER_STATE_TRANSITION_ERROR', r.transitionOrderToState);
    await shop.q(doc('shop', 'set-order-shipping-method'), { shippingMethodId: [home.id] });
    r = await shop.q(doc('shop', 'transition-order-to-state'), { state: 'ArrangingPayment' });
    check('g. transition to ArrangingPayment with home-delivery but without an address also works', r.transitionOrderToState.state === 'ArrangingPayment', r.transitionOrderToState);
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: bySku['eggs-6'].id, quantity: 1 });
    check('c. addItemToOrder in ArrangingPayment -> ORDER_MODIFICATION_ERROR', r.addItemToOrder.errorCode === 'ORDER_MODIFICATION_ERROR', r.addItemToOrder);
    ({ shop } = await shopLogin(ready));
    const aoC = (await shop.q(doc('shop', 'active-order'))).activeOrder;
    check('d. after re-login an order in ArrangingPayment is still the activeOrder, with its key', aoC?.state === 'ArrangingPayment' && aoC.customFields.idempotencyKey === KEY_C, aoC && { code: aoC.code, state: aoC.state, customFields: aoC.customFields });
    const placedC = (await shop.q(doc('shop', 'add-payment-to-order'), { method: 'auto-settle', metadata: {} })).addPaymentToOrder;
    check('c. order C placed from the re-logged-in session', placedC.state === 'PaymentSettled', { code: placedC.code, state: placedC.state });

    // h. shop-side actions through the Admin API ------------------------------------------
    const admin = new Client(ready.admin_api, ready.channel_token, 'admin');
    r = await admin.q(doc('admin', 'login'), SUPERADMIN);
    check('h. admin login (bearer token in vendure-auth-token)', r.login.__typename === 'CurrentUser' && !!admin.lastAuthHeader, r.login);
    const adminOrder = async code => (await admin.q(doc('admin', 'order-by-code'), { code })).orders.items[0];
    const shopState = async code => {
        const o = (await shop.q(doc('shop', 'order-by-code'), { code })).orderByCode;
        return { state: o.state, fulfillments: o.fulfillments.map(x => x.state), lines: o.lines.map(l => `${l.productVariant.sku} quantity=${l.quantity} orderPlacedQuantity=${l.orderPlacedQuantity}`) };
    };
    const coffeeBeforeFulfil = await stockOf('coffee-beans-500g');
    const aOrder = await adminOrder(placedA.code);
    const coffeeLine = aOrder.lines.find(l => l.productVariant.sku === 'coffee-beans-500g');
    const eggsLine = aOrder.lines.find(l => l.productVariant.sku === 'eggs-6');
    const states = [];
    r = await admin.q(doc('admin', 'add-fulfillment-to-order'), { lines: [{ orderLineId: coffeeLine.id, quantity: 1 }], method: 'DHL', trackingCode: 'TRACK-A1' });
    const f1 = r.addFulfillmentToOrder;
    check('h. addFulfillmentToOrder (manual-fulfillment, 1 of 3 items) -> Fulfillment Pending', f1.state === 'Pending', f1);
    states.push(['after fulfilment 1 created', await shopState(placedA.code)]);
    r = await admin.q(doc('admin', 'transition-fulfillment-to-state'), { id: f1.id, state: 'Shipped' });
    check('h. transitionFulfillmentToState(Shipped)', r.transitionFulfillmentToState.state === 'Shipped', r.transitionFulfillmentToState);
    let st = await shopState(placedA.code);
    states.push(['after fulfilment 1 Shipped', st]);
    check('h. customer sees PartiallyShipped', st.state === 'PartiallyShipped', st);
    r = await admin.q(doc('admin', 'transition-fulfillment-to-state'), { id: f1.id, state: 'Delivered' });
    check('h. transitionFulfillmentToState(Delivered)', r.transitionFulfillmentToState.state === 'Delivered', r.transitionFulfillmentToState);
    st = await shopState(placedA.code);
    states.push(['after fulfilment 1 Delivered', st]);
    check('h. customer sees PartiallyDelivered', st.state === 'PartiallyDelivered', st);
    r = await admin.q(doc('admin', 'add-fulfillment-to-order'), {
        lines: [
            { orderLineId: coffeeLine.id, quantity: 1 },
            { orderLineId: eggsLine.id, quantity: 1 },
        ],
        method: 'DHL',
        trackingCode: 'TRACK-A2',
    });
    const f2 = r.addFulfillmentToOrder;
    check('h. second fulfilment for the rest', f2.state === 'Pending', f2);
    r = await admin.q(doc('admin', 'transition-fulfillment-to-state'), { id: f2.id, state: 'Shipped' });
    st = await shopState(placedA.code);
    states.push(['after fulfilment 2 Shipped (1 already Delivered)', st]);
    check('h. all items shipped, one fulfilment already delivered -> customer sees PartiallyDelivered (not Shipped)', st.state === 'PartiallyDelivered', st);
    r = await admin.q(doc('admin', 'transition-fulfillment-to-state'), { id: f2.id, state: 'Delivered' });
    st = await shopState(placedA.code);
    states.push(['after fulfilment 2 Delivered', st]);
    check('h. everything delivered -> customer sees Delivered', st.state === 'Delivered', st);
    const coffeeAfterFulfil = await stockOf('coffee-beans-500g');
    check('h. fulfilment does not change stockLevel (allocation becomes a sale)', coffeeAfterFulfil === coffeeBeforeFulfil, `${coffeeBeforeFulfil} -> ${coffeeAfterFulfil}`);
    r = await admin.raw(doc('admin', 'add-fulfillment-to-order'), { lines: [{ orderLineId: coffeeLine.id, quantity: 1 }], method: 'DHL', trackingCode: 'X' });
    check('h. fulfilling more than was ordered is refused', !!(r.errors || r.data?.addFulfillmentToOrder?.errorCode), r.errors ? r.errors.map(e => e.message) : r.data.addFulfillmentToOrder);

    // full cancel of B
    const bOrder = await adminOrder(placedB.code);
    r = await admin.q(doc('admin', 'cancel-order'), { orderId: bOrder.id, reason: 'smoke: shop cancelled', cancelShipping: true });
    check('h. cancelOrder (whole order B) -> Cancelled', r.cancelOrder.state === 'Cancelled', r.cancelOrder);
    st = await shopState(placedB.code);
    states.push(['order B after cancelOrder', st]);
    check('h. customer sees Cancelled, line quantity 0', st.state === 'Cancelled', st);
    const milkAfterCancel = await stockOf('milk-whole-1l');
    check('h. cancelling releases the allocated stock (milk stockLevel back to its value before order B)', milkAfterCancel === milkBeforeB, `${milkBeforeB} -> ${milkAfterCancel}`);

    // partial cancel of C (1 of 2 coffee-beans-1kg)
    const cOrder = await adminOrder(placedC.code);
    const c1kg = cOrder.lines.find(l => l.productVariant.sku === 'coffee-beans-1kg');
    r = await admin.q(doc('admin', 'cancel-order'), { orderId: cOrder.id, lines: [{ orderLineId: c1kg.id, quantity: 1 }], reason: 'smoke: 1 kg bag short' });
    check('h. cancelOrder with lines (partial) keeps the order state', r.cancelOrder.__typename === 'Order' && r.cancelOrder.state !== 'Cancelled', r.cancelOrder);
    st = await shopState(placedC.code);
    states.push(['order C after partial cancelOrder', st]);
    check('h. customer sees reduced line quantity after partial cancel', st.lines.some(l => l.startsWith('coffee-beans-1kg quantity=1 ')), st);

    // set stock
    const desc = bySku['descaler-tabs-6'];
    r = await admin.q(doc('admin', 'update-variant-stock'), { id: desc.id, stockOnHand: 5 });
    check('h. updateProductVariants stockOnHand=5', r.updateProductVariants[0].stockOnHand === 5, r.updateProductVariants[0]);
    let lvl = (await shop.q(doc('shop', 'product-variants-by-consumable'), { slug: 'descaler-tablets', consumable: 'descaler' })).product.variantList.items[0];
    check('h. shop stockLevel follows ("5")', lvl.stockLevel === '5', lvl);
    r = await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: desc.id, quantity: 6 });
    check('h. adding 6 of 5 -> INSUFFICIENT_STOCK_ERROR quantityAvailable 5', r.addItemToOrder.errorCode === 'INSUFFICIENT_STOCK_ERROR' && r.addItemToOrder.quantityAvailable === 5, {
        errorCode: r.addItemToOrder.errorCode,
        message: r.addItemToOrder.message,
        quantityAvailable: r.addItemToOrder.quantityAvailable,
    });
    await shop.q(doc('shop', 'remove-all-order-lines'));
    r = await admin.q(doc('admin', 'update-variant-stock'), { id: desc.id, stockOnHand: 1000 });
    lvl = (await shop.q(doc('shop', 'product-variants-by-consumable'), { slug: 'descaler-tablets', consumable: 'descaler' })).product.variantList.items[0];
    check('h. stock restored to 1000', lvl.stockLevel === '1000', lvl.stockLevel);

    console.log('order states seen by the customer (orderByCode):');
    for (const [when, s2] of states) console.log(`     ${when}: ${JSON.stringify(s2)}`);
    await shop.q(doc('shop', 'logout'));
    return { placedA, shopToken: shop.token };
}

async function main() {
    const external = process.env.SMOKE_SHOP_API;
    if (external) {
        const ready = { shop_api: external, admin_api: process.env.SMOKE_ADMIN_API, channel_token: process.env.SMOKE_CHANNEL_TOKEN };
        await mainFlow(ready);
        return;
    }
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'replenish-vendure-smoke-'));
    const logFile = path.join(dataDir, 'server.log');
    let server;
    try {
        server = await startServer(dataDir, logFile);
        check('server: exactly one JSON ready line', server.ready.ready === true && server.ready.port > 0 && server.ready.shop_api === `http://127.0.0.1:${server.ready.port}/shop-api`, server.ready);
        console.log(`     cold start (empty DB + seeding) to ready line: ${server.ms} ms, RSS at ready ${Math.round(server.rssKiB / 1024)} MiB`);
        const firstToken = server.ready.channel_token;
        const { placedA } = await mainFlow(server.ready);
        const rssAfter = readRssKiB(server.child.pid);
        console.log(`     RSS after the whole flow: ${Math.round(rssAfter / 1024)} MiB`);
        check('server: nothing else was written to stdout', server.extraStdout() === '', JSON.stringify(server.extraStdout().slice(0, 200)));
        let stopped = await stopServer(server);
        check('server: SIGTERM -> exit code 0', stopped.code === 0, stopped);

        // warm restart on the same data dir: no duplicates, data and sessions survive
        server = await startServer(dataDir, logFile);
        console.log(`     warm restart to ready line: ${server.ms} ms, RSS at ready ${Math.round(server.rssKiB / 1024)} MiB`);
        const shop = new Client(server.ready.shop_api, server.ready.channel_token, 'shop');
        const cat = await shop.q(doc('shop', 'catalog'), { take: 100 });
        check('restart: still 5 products / 7 variants', cat.products.totalItems === 5 && cat.products.items.flatMap(p => p.variants).length === 7);
        check('restart: same channel token as on the first start', server.ready.channel_token === firstToken, server.ready.channel_token);
        await shop.q(doc('shop', 'login'), CUSTOMER);
        // eligibleShippingMethods is computed for the active order, so put something in it first.
        const coffee = cat.products.items.flatMap(p => p.variants).find(v => v.sku === 'coffee-beans-500g');
        await shop.q(doc('shop', 'add-item-to-order'), { productVariantId: coffee.id, quantity: 1 });
        const esm = (await shop.q(doc('shop', 'eligible-shipping-methods'))).eligibleShippingMethods;
        check('restart: still exactly 2 shipping methods', esm.length === 2, esm.map(m => m.code));
        const epm = (await shop.q(doc('shop', 'eligible-payment-methods'))).eligiblePaymentMethods;
        check('restart: still exactly 1 payment method', epm.length === 1, epm.map(m => m.code));
        await shop.q(doc('shop', 'remove-all-order-lines'));
        const me = await shop.q(doc('shop', 'active-customer'));
        check('restart: customer has exactly 1 address', me.activeCustomer.addresses.length === 1);
        const obc = (await shop.q(doc('shop', 'order-by-code'), { code: placedA.code })).orderByCode;
        check('restart: order A survived with its state', obc?.state === 'Delivered', obc?.state);
        stopped = await stopServer(server);
        check('server: SIGTERM after restart -> exit code 0', stopped.code === 0, stopped);
        server = undefined;
    } catch (e) {
        failed++;
        console.log(`FAIL - exception: ${e.stack || e}`);
        try {
            console.log('---- server log (tail) ----\n' + fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'));
        } catch {}
    } finally {
        if (server) await stopServer(server);
        if (!failed) fs.rmSync(dataDir, { recursive: true, force: true });
        else console.log(`data dir kept for inspection: ${dataDir}`);
    }
}

try {
    await main();
} catch (e) {
    failed++;
    console.log(`FAIL - exception: ${e.stack || e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
