-- Whose tokens a bundle holds, when the provider's token response says (Anthropic's names
-- the account and its organization). Kept for operators and admins; updated on refresh
-- when the provider sends them again. NULL: unknown (older rows, or a provider that does
-- not say).
ALTER TABLE token_bundles ADD COLUMN account_uuid TEXT;
ALTER TABLE token_bundles ADD COLUMN account_email TEXT;
ALTER TABLE token_bundles ADD COLUMN organization_uuid TEXT;
ALTER TABLE token_bundles ADD COLUMN organization_name TEXT;
