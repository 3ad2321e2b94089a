// The tokenstream client library.
export * from './client';
