-- Where the network fee a customer pays on top of the price (BTCPay's paymentMethodFee) is credited.
-- NULL in mappings saved before sovterm booked these fees: such a store's fee documents wait (held) until
-- the operator maps the account (`sovterm setup accounts --auto` or --fee-collected-account).
ALTER TABLE qbo_mappings ADD COLUMN fee_collected_account_id TEXT;
