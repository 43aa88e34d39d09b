-- The certificate a renewal replaced, accepted only until the host first presents the new
-- one (a Renew answer lost on the way must not lock the agent out). Any other certificate
-- the CA ever issued to the host is refused: a copied tls.json stops working at the next
-- renewal instead of at its expiry.
ALTER TABLE "hosts" ADD COLUMN "cert_serial_prev" TEXT;
