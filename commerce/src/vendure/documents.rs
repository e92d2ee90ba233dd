//! The GraphQL documents the adapter sends to Vendure's Shop API. Mutations answer union
//! types, so each selects `__typename` and `... on ErrorResult { errorCode message }`.

/// The fields of an order the adapter reads, everywhere it reads one.
macro_rules! order_fields {
    () => {
        "id code state active createdAt orderPlacedAt totalWithTax currencyCode \
         customFields { idempotencyKey reference } \
         lines { quantity orderPlacedQuantity productVariant { sku } } \
         shippingLines { priceWithTax shippingMethod { id code name \
           customFields { kind leadDaysMin leadDaysMax pickupName pickupAddress openingHours } } } \
         fulfillments { state createdAt updatedAt }"
    };
}

pub(crate) const LOGIN: &str = "mutation Login($username: String!, $password: String!) { \
  login(username: $username, password: $password, rememberMe: true) { \
    __typename ... on CurrentUser { id identifier } ... on ErrorResult { errorCode message } } }";

pub(crate) const CATALOG: &str = "query Catalog($take: Int, $skip: Int) { \
  products(options: { take: $take, skip: $skip }) { totalItems items { \
    variants { id sku name priceWithTax currencyCode stockLevel \
      customFields { consumable packSize unit } } } } }";

pub(crate) const ACTIVE_ORDER: &str = concat!(
    "query ActiveOrder { activeOrder { ",
    order_fields!(),
    " } }"
);

pub(crate) const ORDER_BY_CODE: &str = concat!(
    "query OrderByCode($code: String!) { orderByCode(code: $code) { ",
    order_fields!(),
    " } }"
);

pub(crate) const ORDERS_BY_KEY: &str = concat!(
    "query OrdersByKey($key: String!) { activeCustomer { \
       orders(options: { filter: { idempotencyKey: { eq: $key } } }) { items { ",
    order_fields!(),
    " } } } }"
);

pub(crate) const ADD_ITEM: &str = concat!(
    "mutation AddItem($variant: ID!, $quantity: Int!) { \
       addItemToOrder(productVariantId: $variant, quantity: $quantity) { __typename ... on Order { ",
    order_fields!(),
    " } ... on ErrorResult { errorCode message } \
       ... on InsufficientStockError { quantityAvailable } } }"
);

pub(crate) const REMOVE_ALL_LINES: &str = "mutation RemoveAllLines { removeAllOrderLines { \
  __typename ... on Order { code } ... on ErrorResult { errorCode message } } }";

pub(crate) const SET_KEY: &str = "mutation SetKey($key: String, $reference: String) { \
  setOrderCustomFields(input: { customFields: { idempotencyKey: $key, reference: $reference } }) { \
    __typename ... on Order { code } ... on ErrorResult { errorCode message } } }";

pub(crate) const SET_ADDRESS: &str = "mutation SetAddress($input: CreateAddressInput!) { \
  setOrderShippingAddress(input: $input) { \
    __typename ... on Order { code } ... on ErrorResult { errorCode message } } }";

pub(crate) const ACTIVE_SHIPPING_METHODS: &str = "query ActiveShippingMethods { \
  activeShippingMethods { id code name \
    customFields { kind leadDaysMin leadDaysMax pickupName pickupAddress openingHours } } }";

pub(crate) const SHIPPING_METHODS: &str = "query ShippingMethods { eligibleShippingMethods { \
  id code name priceWithTax \
  customFields { kind leadDaysMin leadDaysMax pickupName pickupAddress openingHours } } }";

pub(crate) const SET_SHIPPING: &str = "mutation SetShipping($ids: [ID!]!) { \
  setOrderShippingMethod(shippingMethodId: $ids) { \
    __typename ... on Order { code } ... on ErrorResult { errorCode message } } }";

pub(crate) const TRANSITION: &str = "mutation Transition($state: String!) { \
  transitionOrderToState(state: $state) { \
    __typename ... on Order { code state } ... on ErrorResult { errorCode message } \
    ... on OrderStateTransitionError { transitionError } } }";

pub(crate) const ADD_PAYMENT: &str = concat!(
    "mutation Pay($method: String!) { \
       addPaymentToOrder(input: { method: $method, metadata: {} }) { __typename ... on Order { ",
    order_fields!(),
    " } ... on ErrorResult { errorCode message } } }"
);
