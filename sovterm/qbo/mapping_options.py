"""The existing QuickBooks entities an operator may name for `setup accounts` (`--deposit-account NAME|ID`
and the like): a pure table, so the CLI builds those options without loading the connector."""

#: option name → (mapping field, entity, name property)
OVERRIDES: dict[str, tuple[str, str, str]] = {
    "deposit_account": ("deposit_account_id", "Account", "Name"),
    "income_account": ("income_account_id", "Account", "Name"),
    "fee_account": ("fee_account_id", "Account", "Name"),
    "fee_collected_account": ("fee_collected_account_id", "Account", "Name"),
    "cashu_account": ("cashu_account_id", "Account", "Name"),
    "item": ("item_id", "Item", "Name"),
    "payment_method": ("payment_method_id", "PaymentMethod", "Name"),
    "customer": ("customer_id", "Customer", "DisplayName"),
    "class": ("class_id", "Class", "Name"),
    "tax_code": ("tax_code_id", "TaxCode", "Name"),
    "location": ("department_id", "Department", "Name"),
}
