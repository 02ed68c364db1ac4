-- Login kiosks get keys of their own, with the `kiosk` role: they may verify a claimed login at
-- recognition and nothing else (they used to be given the all-powerful internal token).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('kiosk', 'viewer', 'operator', 'admin'));
