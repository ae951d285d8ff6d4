/** The values of AUTH_MODE (what each means: src/api/auth/auth-mode.ts). */
export const AUTH_SETTINGS = ["auto", "tokens", "local"] as const;
export type AuthSetting = (typeof AUTH_SETTINGS)[number];
