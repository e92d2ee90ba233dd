#!/usr/bin/env node
// Headless Vendure shop used as a test peer for the replenish agent.
//
// Contract (see README.md):
//   * stdout carries exactly ONE line, the ready line:
//       {"ready":true,"port":N,"shop_api":"http://127.0.0.1:N/shop-api",
//        "admin_api":"http://127.0.0.1:N/admin-api","channel_token":"..."}
//     Everything else (Vendure/Nest/TypeORM logging, console.*) goes to stderr.
//   * Binds to 127.0.0.1 only. PORT=0 (the default) picks a free port.
//   * VENDURE_DATA_DIR holds the sql.js database file (created if missing;
//     default: a fresh temp dir that is removed again on a clean stop).
//   * First start on an empty database seeds the shop through the Admin API;
//     every seeding step checks for existing data first, so restarts on the same
//     data dir never duplicate anything.
//   * SIGTERM / SIGINT: graceful close, exit code 0. With VENDURE_EXIT_ON_STDIN_EOF=1
//     it also stops when its stdin reaches EOF (the parent died or closed the pipe).
'use strict';

// Vendure 3.x sends anonymous telemetry to the internet unless told not to.
process.env.VENDURE_DISABLE_TELEMETRY = 'true';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// Keep stdout for the ready line only: anything else that writes to stdout
// (console.log, a library's logger) is redirected to stderr.
const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

const {
    bootstrap,
    DefaultJobQueuePlugin,
    DefaultSearchPlugin,
    JobQueueService,
    LanguageCode,
    LogLevel,
    dummyPaymentHandler,
} = require('@vendure/core');

const HOST = '127.0.0.1';
const CHANNEL_TOKEN = process.env.VENDURE_CHANNEL_TOKEN || 'replenish-test-channel';
const SUPERADMIN_USERNAME = process.env.SUPERADMIN_USERNAME || 'superadmin';
const SUPERADMIN_PASSWORD = process.env.SUPERADMIN_PASSWORD || 'superadmin';
const LOG_LEVEL = (process.env.VENDURE_LOG_LEVEL || 'info').toLowerCase();

const t0 = process.hrtime.bigint();
const PROCESS_STARTED_MS = Date.now();
const elapsedMs = () => Number((process.hrtime.bigint() - t0) / 1000000n);

function parsePort(raw) {
    if (raw === undefined || raw === '') return 0;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
        throw new Error(`PORT must be an integer 0..65535, got ${JSON.stringify(raw)}`);
    }
    return n;
}

// ---------------------------------------------------------------- logging --

const LEVELS = { error: LogLevel.Error, warn: LogLevel.Warn, info: LogLevel.Info, verbose: LogLevel.Verbose, debug: LogLevel.Debug };

class StderrLogger {
    constructor(level) {
        this.level = level;
        this.defaultContext = 'Vendure';
    }
    setDefaultContext(ctx) {
        this.defaultContext = ctx;
    }
    write(tag, message, context, trace) {
        const line = `${new Date().toISOString()} ${tag} [${context || this.defaultContext}] ${message}\n`;
        process.stderr.write(trace ? line + trace + '\n' : line);
    }
    error(message, context, trace) {
        if (this.level >= LogLevel.Error) this.write('error', message, context, trace);
    }
    warn(message, context) {
        if (this.level >= LogLevel.Warn) this.write('warn', message, context);
    }
    info(message, context) {
        if (this.level >= LogLevel.Info) this.write('info', message, context);
    }
    verbose(message, context) {
        if (this.level >= LogLevel.Verbose) this.write('verbose', message, context);
    }
    debug(message, context) {
        if (this.level >= LogLevel.Debug) this.write('debug', message, context);
    }
}
const logger = new StderrLogger(LEVELS[LOG_LEVEL] ?? LogLevel.Info);
const log = msg => logger.info(msg, 'replenish-shop');

// ----------------------------------------------------------- strategies --

// The default StockDisplayStrategy only says IN_STOCK / LOW_STOCK / OUT_OF_STOCK.
// The agent wants the saleable quantity, so ProductVariant.stockLevel is the
// number as a decimal string ("1000", "0").
class NumericStockDisplayStrategy {
    getStockLevel(_ctx, _productVariant, saleableStockLevel) {
        return String(Math.max(0, saleableStockLevel));
    }
}

// ------------------------------------------------------------- the config --

function buildConfig(port, dbFile) {
    return {
        apiOptions: {
            hostname: HOST,
            port,
            adminApiPath: 'admin-api',
            shopApiPath: 'shop-api',
            adminApiPlayground: false,
            shopApiPlayground: false,
            adminApiDebug: false,
            shopApiDebug: false,
        },
        authOptions: {
            tokenMethod: ['bearer', 'cookie'],
            requireVerification: false,
            superadminCredentials: { identifier: SUPERADMIN_USERNAME, password: SUPERADMIN_PASSWORD },
            cookieOptions: { secret: 'replenish-test-shop-cookie-secret' },
        },
        defaultChannelToken: CHANNEL_TOKEN,
        dbConnectionOptions: {
            type: 'sqljs',
            location: dbFile,
            autoSave: true,
            synchronize: true,
            logging: false,
        },
        paymentOptions: { paymentMethodHandlers: [dummyPaymentHandler] },
        // Vendure's default limits are 999 items per order / per line, which is below the
        // seeded stock (1000) and would hide INSUFFICIENT_STOCK_ERROR behind
        // ORDER_LIMIT_ERROR / ORDER_LINE_LIMIT_ERROR. Raised so both can be tested.
        orderOptions: { orderItemsLimit: 5000, orderLineItemsLimit: 5000 },
        catalogOptions: { stockDisplayStrategy: new NumericStockDisplayStrategy() },
        logger,
        customFields: {
            ProductVariant: [
                { name: 'consumable', type: 'string', nullable: true, public: true },
                { name: 'packSize', type: 'float', nullable: true, public: true },
                { name: 'unit', type: 'string', nullable: true, public: true },
            ],
            Order: [
                { name: 'idempotencyKey', type: 'string', nullable: true, unique: true, public: true },
                { name: 'reference', type: 'string', nullable: true, public: true },
            ],
            ShippingMethod: [
                { name: 'kind', type: 'string', nullable: true, public: true, options: [{ value: 'delivery' }, { value: 'pickup' }] },
                { name: 'leadDaysMin', type: 'int', nullable: true, public: true },
                { name: 'leadDaysMax', type: 'int', nullable: true, public: true },
                { name: 'pickupName', type: 'string', nullable: true, public: true },
                { name: 'pickupAddress', type: 'string', nullable: true, public: true },
                { name: 'openingHours', type: 'string', nullable: true, public: true },
            ],
        },
        plugins: [
            // In-process job queue (no worker). Seeding queues ~20 search-index and
            // collection jobs that must be done before "ready"; 100 ms polling keeps the
            // cold start short (~1% of a core when idle). Session cleanup can wait.
            DefaultJobQueuePlugin.init({ pollInterval: queueName => (queueName === 'clean-sessions' ? 1000 : 100) }),
            DefaultSearchPlugin.init({ bufferUpdates: false, indexStockStatus: true }),
        ],
    };
}

// ---------------------------------------------------------------- seeding --

const SEED = {
    country: { code: 'DE', name: 'Germany' },
    zone: 'Germany',
    taxCategory: 'Standard',
    taxRate: { name: 'DE standard VAT 19%', value: 19 },
    products: [
        {
            slug: 'coffee-beans',
            name: 'Coffee beans',
            description: 'Whole roasted coffee beans.',
            optionGroup: { code: 'coffee-beans-size', name: 'Size' },
            variants: [
                { sku: 'coffee-beans-500g', name: 'Coffee beans, 500 g', option: ['500g', '500 g'], consumable: 'coffee_beans', packSize: 500, unit: 'g', price: 899, stock: 1000 },
                { sku: 'coffee-beans-1kg', name: 'Coffee beans, 1 kg', option: ['1kg', '1 kg'], consumable: 'coffee_beans', packSize: 1000, unit: 'g', price: 1649, stock: 1000 },
            ],
        },
        {
            slug: 'whole-milk',
            name: 'Whole milk',
            description: 'Fresh whole milk, 3.5 % fat.',
            variants: [{ sku: 'milk-whole-1l', name: 'Whole milk, 1 l', consumable: 'milk', packSize: 1000, unit: 'ml', price: 129, stock: 1000 }],
        },
        {
            slug: 'eggs',
            name: 'Eggs',
            description: 'Free-range eggs.',
            variants: [{ sku: 'eggs-6', name: 'Eggs, pack of 6', consumable: 'eggs', packSize: 6, unit: 'count', price: 249, stock: 1000 }],
        },
        {
            slug: 'descaler-tablets',
            name: 'Descaler tablets',
            description: 'Descaler tablets for coffee machines and kettles.',
            variants: [{ sku: 'descaler-tabs-6', name: 'Descaler tablets, 6', consumable: 'descaler', packSize: 6, unit: 'count', price: 799, stock: 1000 }],
        },
        {
            slug: 'dishwasher-tablets',
            name: 'Dishwasher tablets',
            description: 'All-in-one dishwasher tablets.',
            optionGroup: { code: 'dishwasher-tablets-size', name: 'Pack size' },
            variants: [
                { sku: 'dishwasher-tabs-40', name: 'Dishwasher tablets, 40', option: ['40', '40 tablets'], consumable: 'dishwasher_tablets', packSize: 40, unit: 'count', price: 1099, stock: 1000 },
                // Deliberately out of stock (trackInventory on, no backorders).
                { sku: 'dishwasher-tabs-80', name: 'Dishwasher tablets, 80', option: ['80', '80 tablets'], consumable: 'dishwasher_tablets', packSize: 80, unit: 'count', price: 1999, stock: 0 },
            ],
        },
    ],
    shippingMethods: [
        {
            code: 'home-delivery',
            name: 'Home delivery',
            description: 'Delivered to your door in 1–2 days.',
            rate: 495,
            customFields: { kind: 'delivery', leadDaysMin: 1, leadDaysMax: 2, pickupName: null, pickupAddress: null, openingHours: null },
        },
        {
            code: 'click-and-collect',
            name: 'Click and collect',
            description: 'Pick up at Shop A, Hauptstraße 1, 10115 Berlin; Mon–Sat 08:00–20:00. Ready the same day.',
            rate: 0,
            customFields: {
                kind: 'pickup',
                leadDaysMin: 0,
                leadDaysMax: 0,
                pickupName: 'Shop A',
                pickupAddress: 'Hauptstraße 1, 10115 Berlin, DE',
                openingHours: 'Mon–Sat 08:00–20:00',
            },
        },
    ],
    paymentMethod: { code: 'auto-settle', name: 'Auto-settling test payment' },
    customer: {
        emailAddress: 'household@example.com',
        password: 'replenish-test',
        firstName: 'Test',
        lastName: 'Household',
        phoneNumber: '+49 30 1234567',
        address: {
            fullName: 'Test Household',
            streetLine1: 'Musterstraße 5',
            city: 'Berlin',
            postalCode: '10117',
            countryCode: 'DE',
            phoneNumber: '+49 30 1234567',
            defaultShippingAddress: true,
            defaultBillingAddress: true,
        },
    },
};

class AdminClient {
    constructor(url) {
        this.url = url;
        this.token = undefined;
    }
    async request(query, variables = {}) {
        const headers = { 'content-type': 'application/json', 'vendure-token': CHANNEL_TOKEN };
        if (this.token) headers.authorization = `Bearer ${this.token}`;
        const res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
        const newToken = res.headers.get('vendure-auth-token');
        if (newToken) this.token = newToken;
        const body = await res.json();
        if (body.errors && body.errors.length) {
            throw new Error(`Admin API error: ${JSON.stringify(body.errors)}\nquery: ${query}`);
        }
        return body.data;
    }
}

function assertNoErrorResult(value, what) {
    if (value && typeof value === 'object' && value.errorCode) {
        throw new Error(`${what}: ${value.errorCode}: ${value.message}`);
    }
    return value;
}

const en = LanguageCode.en;

async function seed(admin) {
    const login = await admin.request(
        `mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
            ... on CurrentUser { id } ... on ErrorResult { errorCode message } } }`,
        { u: SUPERADMIN_USERNAME, p: SUPERADMIN_PASSWORD },
    );
    assertNoErrorResult(login.login, 'superadmin login');
    let created = 0;

    // Jobs (search index, collections) are stored in the database. A previous process
    // that was killed mid-job leaves it RUNNING for ever; cancel such leftovers and
    // rebuild the search index so nothing is missing from it. Job timestamps have
    // one-second resolution, hence the cut-off one second before this process started.
    const cutoff = new Date(Math.floor(PROCESS_STARTED_MS / 1000) * 1000 - 1000).toISOString();
    const { jobs: stale } = await admin.request(
        `query($before: DateTime!) { jobs(options: { filter: { isSettled: { eq: false }, createdAt: { before: $before } }, take: 100 }) {
            items { id queueName state } } }`,
        { before: cutoff },
    );
    if (stale.items.length) {
        logger.warn(`cancelling ${stale.items.length} job(s) left unfinished by an earlier process; rebuilding the search index`, 'replenish-shop');
        for (const job of stale.items) {
            await admin.request(`mutation($id: ID!) { cancelJob(jobId: $id) { id state } }`, { id: job.id });
        }
        await admin.request(`mutation { reindex { id } }`);
    }

    // Country
    let { countries } = await admin.request(
        `query($code: String!) { countries(options: { filter: { code: { eq: $code } } }) { items { id code } } }`,
        { code: SEED.country.code },
    );
    let countryId = countries.items[0]?.id;
    if (!countryId) {
        const r = await admin.request(
            `mutation($input: CreateCountryInput!) { createCountry(input: $input) { id } }`,
            { input: { code: SEED.country.code, enabled: true, translations: [{ languageCode: en, name: SEED.country.name }] } },
        );
        countryId = r.createCountry.id;
        created++;
    }

    // Zone
    const { zones } = await admin.request(
        `query($name: String!) { zones(options: { filter: { name: { eq: $name } } }) { items { id name } } }`,
        { name: SEED.zone },
    );
    let zoneId = zones.items[0]?.id;
    if (!zoneId) {
        const r = await admin.request(
            `mutation($input: CreateZoneInput!) { createZone(input: $input) { id } }`,
            { input: { name: SEED.zone, memberIds: [countryId] } },
        );
        zoneId = r.createZone.id;
        created++;
    }

    // Tax category + rate
    const { taxCategories } = await admin.request(
        `query { taxCategories(options: { take: 100 }) { items { id name } } }`,
    );
    let taxCategoryId = taxCategories.items.find(c => c.name === SEED.taxCategory)?.id;
    if (!taxCategoryId) {
        const r = await admin.request(
            `mutation($input: CreateTaxCategoryInput!) { createTaxCategory(input: $input) { id } }`,
            { input: { name: SEED.taxCategory, isDefault: true } },
        );
        taxCategoryId = r.createTaxCategory.id;
        created++;
    }
    const { taxRates } = await admin.request(
        `query($name: String!) { taxRates(options: { filter: { name: { eq: $name } } }) { items { id } } }`,
        { name: SEED.taxRate.name },
    );
    if (!taxRates.items.length) {
        await admin.request(
            `mutation($input: CreateTaxRateInput!) { createTaxRate(input: $input) { id } }`,
            { input: { name: SEED.taxRate.name, enabled: true, value: SEED.taxRate.value, categoryId: taxCategoryId, zoneId } },
        );
        created++;
    }

    // Default channel: EUR, prices include tax, DE zone for tax + shipping.
    const { activeChannel } = await admin.request(
        `query { activeChannel { id token defaultCurrencyCode pricesIncludeTax defaultTaxZone { id } defaultShippingZone { id } } }`,
    );
    if (
        activeChannel.defaultCurrencyCode !== 'EUR' ||
        !activeChannel.pricesIncludeTax ||
        activeChannel.defaultTaxZone?.id !== zoneId ||
        activeChannel.defaultShippingZone?.id !== zoneId
    ) {
        const r = await admin.request(
            `mutation($input: UpdateChannelInput!) { updateChannel(input: $input) {
                ... on Channel { id defaultCurrencyCode } ... on ErrorResult { errorCode message } } }`,
            {
                input: {
                    id: activeChannel.id,
                    defaultCurrencyCode: 'EUR',
                    availableCurrencyCodes: ['EUR'],
                    pricesIncludeTax: true,
                    defaultTaxZoneId: zoneId,
                    defaultShippingZoneId: zoneId,
                },
            },
        );
        assertNoErrorResult(r.updateChannel, 'updateChannel');
        created++;
    }

    // Products + variants
    for (const p of SEED.products) {
        let { product } = await admin.request(
            `query($slug: String!) { product(slug: $slug) { id variants { sku } optionGroups { id code options { id code } } } }`,
            { slug: p.slug },
        );
        if (!product) {
            const r = await admin.request(
                `mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }`,
                { input: { enabled: true, translations: [{ languageCode: en, name: p.name, slug: p.slug, description: p.description }] } },
            );
            product = { id: r.createProduct.id, variants: [], optionGroups: [] };
            created++;
        }
        const optionIdsByCode = {};
        if (p.optionGroup) {
            let group = product.optionGroups.find(g => g.code === p.optionGroup.code);
            if (!group) {
                const r = await admin.request(
                    `mutation($input: CreateProductOptionGroupInput!) { createProductOptionGroup(input: $input) { id code options { id code } } }`,
                    {
                        input: {
                            code: p.optionGroup.code,
                            translations: [{ languageCode: en, name: p.optionGroup.name }],
                            options: p.variants.map(v => ({ code: v.option[0], translations: [{ languageCode: en, name: v.option[1] }] })),
                        },
                    },
                );
                group = r.createProductOptionGroup;
                await admin.request(
                    `mutation($productId: ID!, $groupId: ID!) { addOptionGroupToProduct(productId: $productId, optionGroupId: $groupId) { id } }`,
                    { productId: product.id, groupId: group.id },
                );
                created++;
            }
            for (const o of group.options) optionIdsByCode[o.code] = o.id;
        }
        const have = new Set(product.variants.map(v => v.sku));
        const missing = p.variants.filter(v => !have.has(v.sku));
        if (missing.length) {
            const r = await admin.request(
                `mutation($input: [CreateProductVariantInput!]!) { createProductVariants(input: $input) { id sku } }`,
                {
                    input: missing.map(v => ({
                        productId: product.id,
                        sku: v.sku,
                        price: v.price,
                        stockOnHand: v.stock,
                        trackInventory: 'TRUE',
                        useGlobalOutOfStockThreshold: false,
                        outOfStockThreshold: 0,
                        taxCategoryId,
                        optionIds: v.option ? [optionIdsByCode[v.option[0]]] : [],
                        translations: [{ languageCode: en, name: v.name }],
                        customFields: { consumable: v.consumable, packSize: v.packSize, unit: v.unit },
                    })),
                },
            );
            created += r.createProductVariants.length;
        }
    }

    // Shipping methods
    for (const s of SEED.shippingMethods) {
        const { shippingMethods } = await admin.request(
            `query($code: String!) { shippingMethods(options: { filter: { code: { eq: $code } } }) { items { id } } }`,
            { code: s.code },
        );
        if (shippingMethods.items.length) continue;
        await admin.request(
            `mutation($input: CreateShippingMethodInput!) { createShippingMethod(input: $input) { id } }`,
            {
                input: {
                    code: s.code,
                    fulfillmentHandler: 'manual-fulfillment',
                    checker: { code: 'default-shipping-eligibility-checker', arguments: [{ name: 'orderMinimum', value: '0' }] },
                    calculator: {
                        code: 'default-shipping-calculator',
                        arguments: [
                            { name: 'rate', value: String(s.rate) },
                            { name: 'includesTax', value: 'auto' },
                            { name: 'taxRate', value: String(SEED.taxRate.value) },
                        ],
                    },
                    translations: [{ languageCode: en, name: s.name, description: s.description }],
                    customFields: s.customFields,
                },
            },
        );
        created++;
    }

    // Payment method
    const { paymentMethods } = await admin.request(
        `query($code: String!) { paymentMethods(options: { filter: { code: { eq: $code } } }) { items { id } } }`,
        { code: SEED.paymentMethod.code },
    );
    if (!paymentMethods.items.length) {
        await admin.request(
            `mutation($input: CreatePaymentMethodInput!) { createPaymentMethod(input: $input) { id } }`,
            {
                input: {
                    code: SEED.paymentMethod.code,
                    enabled: true,
                    handler: { code: dummyPaymentHandler.code, arguments: [{ name: 'automaticSettle', value: 'true' }] },
                    translations: [{ languageCode: en, name: SEED.paymentMethod.name, description: 'Dummy payment handler; settles immediately.' }],
                },
            },
        );
        created++;
    }

    // Customer (created with a password through the Admin API => already verified)
    const c = SEED.customer;
    const { customers } = await admin.request(
        `query($email: String!) { customers(options: { filter: { emailAddress: { eq: $email } } }) { items { id addresses { id } } } }`,
        { email: c.emailAddress },
    );
    let customer = customers.items[0];
    if (!customer) {
        const r = await admin.request(
            `mutation($input: CreateCustomerInput!, $password: String) { createCustomer(input: $input, password: $password) {
                ... on Customer { id } ... on ErrorResult { errorCode message } } }`,
            { input: { emailAddress: c.emailAddress, firstName: c.firstName, lastName: c.lastName, phoneNumber: c.phoneNumber }, password: c.password },
        );
        customer = { ...assertNoErrorResult(r.createCustomer, 'createCustomer'), addresses: [] };
        created++;
    }
    if (!customer.addresses.length) {
        await admin.request(
            `mutation($id: ID!, $input: CreateAddressInput!) { createCustomerAddress(customerId: $id, input: $input) { id } }`,
            { id: customer.id, input: c.address },
        );
        created++;
    }

    // Creating products queues search-index jobs; wait until the (in-process) job
    // queue has worked them off so `search` answers correctly once we say "ready".
    const deadline = Date.now() + 60000;
    for (;;) {
        const { jobs } = await admin.request(
            `query($after: DateTime!) { jobs(options: { filter: { isSettled: { eq: false }, createdAt: { after: $after } }, take: 1 }) { totalItems } }`,
            { after: cutoff },
        );
        if (jobs.totalItems === 0) break;
        if (Date.now() > deadline) throw new Error(`job queue still has ${jobs.totalItems} unsettled job(s) after 60 s`);
        await new Promise(r => setTimeout(r, 100));
    }

    // Log out so the seeding session doesn't linger.
    await admin.request(`mutation { logout { success } }`);
    return created;
}

// ------------------------------------------------------------------- main --

async function main() {
    const port = parsePort(process.env.PORT);
    let dataDir = process.env.VENDURE_DATA_DIR;
    let removeDataDirOnExit = false;
    if (!dataDir) {
        dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'replenish-vendure-'));
        removeDataDirOnExit = true;
    }
    fs.mkdirSync(dataDir, { recursive: true });
    const dbFile = path.join(dataDir, 'vendure.sqlite');
    log(`data dir ${dataDir} (db ${dbFile}, ${fs.existsSync(dbFile) ? 'existing' : 'new'})`);

    const app = await bootstrap(buildConfig(port, dbFile));

    // Nest registered its own signal handlers (enableShutdownHooks), which close the
    // app and then re-raise the signal (exit code 143/130). Replace them with ours
    // so a stop is an orderly exit 0.
    let stopping = false;
    const stop = async signal => {
        if (stopping) return;
        stopping = true;
        log(`${signal} received, shutting down`);
        const killTimer = setTimeout(() => {
            process.stderr.write('shutdown took too long; exiting\n');
            process.exit(1);
        }, 10000);
        killTimer.unref();
        try {
            await app.close();
        } catch (e) {
            process.stderr.write(`error during shutdown: ${e && e.stack}\n`);
        }
        if (removeDataDirOnExit) fs.rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
    };
    for (const sig of ['SIGTERM', 'SIGINT']) {
        process.removeAllListeners(sig);
        process.on(sig, () => void stop(sig));
    }
    // Optional: die with the parent. A test harness that spawns us with a piped stdin
    // and crashes (never sending SIGTERM) closes the pipe; we then stop on our own.
    if (process.env.VENDURE_EXIT_ON_STDIN_EOF === '1') {
        process.stdin.on('end', () => void stop('stdin EOF'));
        process.stdin.on('error', () => void stop('stdin error'));
        process.stdin.resume();
    }

    // No separate worker process: run the job queue (search index etc.) in here.
    await app.get(JobQueueService).start();

    const address = app.getHttpServer().address();
    const realPort = address.port;
    const base = `http://${HOST}:${realPort}`;

    const created = await seed(new AdminClient(`${base}/admin-api`));
    log(created ? `seeded ${created} new record(s)` : 'seed data already present; nothing created');

    const ready = {
        ready: true,
        port: realPort,
        shop_api: `${base}/shop-api`,
        admin_api: `${base}/admin-api`,
        channel_token: CHANNEL_TOKEN,
    };
    writeStdout(JSON.stringify(ready) + '\n');
    log(`ready after ${elapsedMs()} ms, rss ${Math.round(process.memoryUsage().rss / 1048576)} MiB`);
}

main().catch(err => {
    process.stderr.write(`replenish-vendure: fatal: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
