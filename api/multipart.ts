import Busboy from 'busboy';
import { AppError } from '../lib/errors.js';

export interface UploadedFile {
  filename: string;
  mimetype: string;
  content: Buffer;
}

/**
 * The file of a `multipart/form-data` body already read into memory (the signature covered its
 * raw bytes): the first part named `field`, at most `maxBytes`. Clear errors for anything else.
 */
export function fileFromMultipart(
  body: Buffer,
  contentType: string | undefined,
  field: string,
  maxBytes: number,
): Promise<UploadedFile> {
  return new Promise((resolve, reject) => {
    let parser: Busboy.Busboy;
    try {
      parser = Busboy({
        headers: { 'content-type': contentType ?? '' },
        limits: { files: 1, fileSize: maxBytes },
      });
    } catch {
      reject(
        new AppError(
          'NEXUS_ERR_VALIDATION',
          `body.${field}: send multipart/form-data`,
          `body.${field}`,
        ),
      );
      return;
    }
    let found: UploadedFile | undefined;
    let tooLarge = false;
    parser.on('file', (name, stream, info) => {
      if (name !== field || found) {
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('limit', () => {
        tooLarge = true;
      });
      stream.on('end', () => {
        found = {
          filename: info.filename || 'file',
          mimetype: info.mimeType,
          content: Buffer.concat(chunks),
        };
      });
    });
    parser.on('error', () =>
      reject(
        new AppError(
          'NEXUS_ERR_VALIDATION',
          `body.${field}: malformed multipart body`,
          `body.${field}`,
        ),
      ),
    );
    parser.on('close', () => {
      if (tooLarge) {
        reject(
          new AppError(
            'NEXUS_ERR_BODY_TOO_LARGE',
            `body.${field}: larger than ${maxBytes} bytes`,
            `body.${field}`,
          ),
        );
      } else if (found && `${found.filename}${found.mimetype}`.includes('\u0000')) {
        // PostgreSQL cannot store a NUL character; the JSON routes refuse it the same way.
        reject(
          new AppError(
            'NEXUS_ERR_VALIDATION',
            `body.${field}: its filename or type must not contain a NUL character (\\u0000)`,
            `body.${field}`,
          ),
        );
      } else if (!found || found.content.length === 0) {
        reject(
          new AppError(
            'NEXUS_ERR_VALIDATION',
            `body.${field}: a non-empty file is required`,
            `body.${field}`,
          ),
        );
      } else resolve(found);
    });
    parser.end(body);
  });
}
