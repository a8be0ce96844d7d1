/**
 * Calls back when a notebook's content that matters to the stage graph
 * changes: cells added, removed or moved, a cell's source or its metadata.
 */
import { ICellModel } from '@jupyterlab/cells';
import { INotebookModel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

export class NotebookWatcher implements IDisposable {
  constructor(
    private readonly _model: INotebookModel,
    private readonly _onContent: () => void,
    private readonly _onMetadata: (cell: ICellModel) => void
  ) {
    _model.contentChanged.connect(this._contentChanged, this);
    _model.cells.changed.connect(this._cellsChanged, this);
    this._cellsChanged();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._model.contentChanged.disconnect(this._contentChanged, this);
    this._model.cells.changed.disconnect(this._cellsChanged, this);
    this._watched.forEach(cell => cell.metadataChanged.disconnect(this._metadataChanged, this));
    this._watched.clear();
  }

  private _contentChanged(): void {
    this._onContent();
  }

  private _metadataChanged(cell: ICellModel): void {
    this._onMetadata(cell);
    this._onContent();
  }

  private _cellsChanged(): void {
    const current = new Set<ICellModel>();
    for (let i = 0; i < this._model.cells.length; i++) {
      current.add(this._model.cells.get(i));
    }
    for (const cell of this._watched) {
      if (!current.has(cell)) {
        cell.metadataChanged.disconnect(this._metadataChanged, this);
        this._watched.delete(cell);
      }
    }
    for (const cell of current) {
      if (!this._watched.has(cell)) {
        cell.metadataChanged.connect(this._metadataChanged, this);
        this._watched.add(cell);
      }
    }
  }

  private _disposed = false;
  private readonly _watched = new Set<ICellModel>();
}
