-- Agents may sign in with a password (POST /auth/v3/agent/token). The column holds a
-- self-describing scrypt hash (lib/passwords.ts), never the password; NULL means the agent has no
-- password and cannot sign in with one (an operator still issues its tokens).
ALTER TABLE agents ADD COLUMN password_hash text NULL;
