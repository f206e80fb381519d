/** Every domain's entity schemas, for MikroORM's discovery. Each domain exports its own list. */
import { staffEntities } from '../staff/entities.js';

export const entities = [...staffEntities];
