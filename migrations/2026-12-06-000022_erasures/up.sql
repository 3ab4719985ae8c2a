-- That a customer's personal data was erased: when, who asked, what it
-- changed (counts per kind). Never whose: no phone, no id of theirs.
CREATE TABLE erasures (
    id              BIGSERIAL PRIMARY KEY,
    user_account_id UUID REFERENCES user_accounts(id) ON DELETE SET NULL,
    requested_by    TEXT NOT NULL,
    erased          JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
