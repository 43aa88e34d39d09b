import { X509Certificate } from "node:crypto";

/** A certificate's serial as the API records it: lower-case hex without leading zeros. */
export const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+/, "");
