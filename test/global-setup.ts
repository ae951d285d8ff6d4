// Replaced by the database bootstrap in the foundations work; engine and data tests need none.
export default async function setup(): Promise<void> {}
